"""Security headers on every HTTP answer of the API and its pages (a plain ASGI middleware).

The pages run only moldlab's own files: a Content-Security-Policy without inline script or
style, no framing by another site (clickjacking), no MIME sniffing, no referrer sent away.
Login answers are never cached. A request body (only logins and acknowledgements have one)
must say its length, at most MAX_BODY_BYTES: a client cannot make the API buffer megabytes.
The interactive OpenAPI page (/docs) runs Swagger UI from moldlab's own files (`moldlab
assets`), with no inline script; it only may set inline styles.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI (/docs) sets style attributes in the markup it renders; its scripts are ours.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
_DOCS = ("/docs",)
MAX_BODY_BYTES = 16 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), usb=(), serial=()"),
)


class SecurityHeaders:
    """Adds the headers above to every HTTP response start; WebSockets pass untouched."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = (DOCS_CSP if path in _DOCS else CSP).encode()
        refusal = _body_refusal(scope)
        no_store = path.startswith("/api/v1/auth/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", [])
                    if k.lower() not in _REPLACED
                ]  # fmt: skip
                headers += [*_COMMON, (b"content-security-policy", csp)]
                if no_store:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        if refusal is not None:
            status, detail = refusal
            body = json.dumps({"detail": detail}).encode()
            await send_with_headers({
                "type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())],
            })  # fmt: skip
            await send_with_headers({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send_with_headers)


def _body_refusal(scope: Scope) -> tuple[int, str] | None:
    """(status, detail) for a request whose body is too long or of unknown length."""
    if scope.get("method") not in _BODY_METHODS:
        return None
    lengths = [v for k, v in scope.get("headers", []) if k.lower() == b"content-length"]
    if not lengths:
        chunked = any(
            k.lower() == b"transfer-encoding" for k, _ in scope.get("headers", [])
        )  # fmt: skip
        return (411, "give the body's Content-Length") if chunked else None
    try:
        length = int(lengths[0])
    except ValueError:
        return 400, "Content-Length is not a number"
    if length > MAX_BODY_BYTES:
        return 413, f"the body is longer than {MAX_BODY_BYTES} bytes"
    return None


_REPLACED = {name for name, _ in _COMMON} | {b"content-security-policy"}
