"""The API's metrics for the plant's Prometheus, on a port of their own (never the public one).

Requests by route template and status (a visitor cannot make new series: an unmatched path
is `unmatched`), their duration, the kiosk and live sockets open, the rollup's passes and
failures, and the database pools' connections.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from dashboard_api.security import App, Message, Receive, Scope, Send
from store.metrics import Callbacks, Reading

_API = "/api/v1"  # every router's prefix (dashboard_api.app)
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """The metrics of one API process, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "moldlab_api_requests", "HTTP requests answered, by route template and status",
            ["route", "status"], registry=self.registry,
        )  # fmt: skip
        self.seconds = Histogram(
            "moldlab_api_request_seconds", "time to answer an HTTP request, by route template",
            ["route"], buckets=_SECONDS_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def read(self, readings: Sequence[Reading]) -> None:
        """Add metrics read at scrape time (sockets open, rollup passes, pools)."""
        self.registry.register(Callbacks(readings))


class CountRequests:
    """A plain ASGI middleware that counts each HTTP answer by its route's template."""

    def __init__(self, app: App, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = _template(scope)
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.seconds.labels(route).observe(time.perf_counter() - started)


def _template(scope: Scope) -> str:
    """The route's path template (its routers' prefix included); `unmatched` if none."""
    route = getattr(scope.get("route"), "path", None)
    if not isinstance(route, str):
        return "unmatched"
    # The route objects are the routers' own, without the prefix they were included with.
    if scope["path"].startswith(_API) and not route.startswith(_API):
        return _API + route
    return route
