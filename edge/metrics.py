"""The agent's health and counters in Prometheus text format (0.0.4), served over plain HTTP.

    metrics = Metrics()
    polls = metrics.counter("moldlab_edge_polls", "Modbus polls answered", labels=("machine",))
    polls.inc(machine="imm-01")
    metrics.gauge_fn("moldlab_edge_backlog_age_seconds", "oldest unsent message", outbox.age_s)
    async with await serve_metrics(metrics, "127.0.0.1", 9108):
        ...

A Pi has no room for a web framework, so the endpoint is a small HTTP/1.1 responder on
asyncio streams: one request per connection, a deadline per connection, and a client that
sends nonsense gets a status code, never a crashed agent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeAlias, TypeVar

__all__ = ["CONTENT_TYPE", "Counter", "Gauge", "Metrics", "serve_metrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT_S: Final = 5.0  # to send the request and take the answer
_MAX_HEADER_BYTES: Final = 8192

_log = logging.getLogger(__name__)
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_REQUEST_LINE = re.compile(r"([A-Z]+) (\S+) HTTP/1\.[01]")

LabelValues: TypeAlias = tuple[str, ...]
# What a computed gauge returns: its value, or (with labels) a value per tuple of label values.
GaugeReading: TypeAlias = float | Mapping[LabelValues, float]
_F = TypeVar("_F", bound="_Family")


def _check_names(name: str, labels: Sequence[str]) -> tuple[str, ...]:
    if not _METRIC_NAME.fullmatch(name):
        raise ValueError(f"not a Prometheus metric name: {name!r}")
    for label in labels:
        if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
            raise ValueError(f"{name}: not a label name: {label!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{name}: a label is named twice: {labels}")
    return tuple(labels)


class _Family:
    """One metric with its samples: a value per tuple of label values."""

    type_name: str

    def __init__(self, name: str, help: str, labels: Sequence[str]) -> None:
        self.name = name
        self.help = help
        self.labels = _check_names(name, labels)
        # Without labels the one sample exists from the start, at 0, as Prometheus expects.
        self._values: dict[LabelValues, float] = {} if self.labels else {(): 0}

    def _key(self, labels: Mapping[str, str]) -> LabelValues:
        if labels.keys() != set(self.labels):
            raise ValueError(f"{self.name} has labels {self.labels}, not {tuple(labels)}")
        return tuple(labels[name] for name in self.labels)

    def get(self, **labels: str) -> float:
        """The current value (0 for label values not seen yet)."""
        return self._values.get(self._key(labels), 0)

    def samples(self) -> Mapping[LabelValues, float]:
        return self._values


class Counter(_Family):
    """A count that only goes up (polls, errors, messages sent); shown as `<name>_total`."""

    type_name = "counter"

    def inc(self, n: float = 1, **labels: str) -> None:
        if n < 0:
            raise ValueError(f"{self.name}: a counter cannot go down ({n})")
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0) + n


class Gauge(_Family):
    """A value that goes up and down (messages queued, machines answering)."""

    type_name = "gauge"

    def set(self, value: float, **labels: str) -> None:
        self._values[self._key(labels)] = value

    def inc(self, n: float = 1, **labels: str) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0) + n

    def dec(self, n: float = 1, **labels: str) -> None:
        self.inc(-n, **labels)


class _ComputedGauge(_Family):
    """A gauge read at scrape time from whoever owns the value (the outbox's backlog age)."""

    type_name = "gauge"

    def __init__(
        self, name: str, help: str, labels: Sequence[str], fn: Callable[[], GaugeReading]
    ) -> None:
        super().__init__(name, help, labels)
        self._fn = fn

    def samples(self) -> Mapping[LabelValues, float]:
        reading = self._fn()
        if isinstance(reading, Mapping):
            for key in reading:
                if not isinstance(key, tuple) or len(key) != len(self.labels):
                    raise ValueError(f"{self.name}: {key!r} is not a value for {self.labels}")
            return reading
        if self.labels:
            raise ValueError(f"{self.name} has labels {self.labels}: its function must map them")
        return {(): reading}


class _ComputedCounter(_ComputedGauge):
    """A counter read at scrape time from whoever counts (a poller's reads)."""

    type_name = "counter"


class Metrics:
    """The agent's metrics, rendered in Prometheus text exposition format on each scrape."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        """A new counter; `name` without `_total`, which is added (and dropped if given)."""
        return self._add(Counter(name.removesuffix("_total") + "_total", help, labels))

    def gauge(self, name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
        """A new gauge that the agent sets."""
        return self._add(Gauge(name, help, labels))

    def gauge_fn(
        self,
        name: str,
        help: str,
        fn: Callable[[], GaugeReading],
        labels: Sequence[str] = (),
    ) -> None:
        """A gauge computed by `fn` at each scrape: a value, or one per tuple of label values."""
        self._add(_ComputedGauge(name, help, labels, fn))

    def counter_fn(
        self,
        name: str,
        help: str,
        fn: Callable[[], GaugeReading],
        labels: Sequence[str] = (),
    ) -> None:
        """A counter kept by someone else, read by `fn` at each scrape (`_total` is added)."""
        self._add(_ComputedCounter(name.removesuffix("_total") + "_total", help, labels, fn))

    def _add(self, family: _F) -> _F:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is defined twice")
        self._families[family.name] = family
        return family

    def render(self) -> str:
        """Every metric as exposition text; a computed gauge that fails raises here."""
        lines: list[str] = []
        for family in self._families.values():
            lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
            lines.append(f"# TYPE {family.name} {family.type_name}")
            samples = family.samples()
            for key in sorted(samples):
                pairs = ",".join(
                    f'{name}="{_escape_label(value)}"'
                    for name, value in zip(family.labels, key, strict=True)
                )
                labels = f"{{{pairs}}}" if pairs else ""
                lines.append(f"{family.name}{labels} {_format_value(samples[key])}")
        return "".join(line + "\n" for line in lines)


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def _format_value(value: float) -> str:
    """A sample value as Prometheus parses it (Go's ParseFloat): 3, 0.25, 1e+20, +Inf, NaN."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


# --- the HTTP endpoint ---------------------------------------------------------------------

_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    500: "Internal Server Error",
}
_TEXT: Final = "text/plain; charset=utf-8"


class _BadRequest(Exception):
    pass


async def serve_metrics(metrics: Metrics, host: str, port: int) -> asyncio.Server:
    """Serve /metrics and /healthz on host:port (0: a free port; see the server's sockets).

    The server is listening when this returns; `async with` it, or close it, to stop.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _answer(metrics, reader, writer)

    server = await asyncio.start_server(handle, host, port, limit=_MAX_HEADER_BYTES)
    _log.info("metrics at %s", ", ".join(_url(s.getsockname()) for s in server.sockets))
    return server


def _url(sockname: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = sockname[0], sockname[1]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"


async def _answer(
    metrics: Metrics, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Read one request, write one response, close: whatever the client does."""
    answered = False
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            try:
                request = await _read_request(reader)
            except _BadRequest:
                response = _response(400, b"bad request\n")
            else:
                if request is None:
                    return  # connected and left without asking anything
                response = _respond(metrics, *request)
            answered = True
            writer.write(response)
            await writer.drain()
    except TimeoutError:
        # A client that never finishes its request (or never reads the answer) cannot hold
        # the connection; one still asking gets a 408.
        if not answered:
            writer.write(_response(408, b"request timeout\n"))
    except ConnectionError:
        pass  # the client went away
    finally:
        writer.close()
        try:
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            pass


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """The method and path of one request, headers read and ignored; None if it sent nothing."""
    lines: list[str] = []
    total = 0
    while True:
        try:
            raw = await reader.readline()
        except ValueError:  # a line longer than the stream's limit
            raise _BadRequest from None
        total += len(raw)
        if not raw and not lines:
            return None
        if total > _MAX_HEADER_BYTES or not raw.endswith(b"\n"):
            raise _BadRequest  # too long, or it closed before the blank line
        line = raw.rstrip(b"\r\n").decode("latin-1")
        if not line:
            break
        lines.append(line)
    if not lines:
        raise _BadRequest
    matched = _REQUEST_LINE.fullmatch(lines[0])
    if not matched or any(":" not in h or h[0] in " \t" for h in lines[1:]):
        raise _BadRequest
    method, target = matched.groups()
    return method, target.split("?", 1)[0]


def _respond(metrics: Metrics, method: str, path: str) -> bytes:
    head = method == "HEAD"
    if path not in ("/metrics", "/healthz"):
        return _response(404, b"not found: try /metrics\n", head=head)
    if method not in ("GET", "HEAD"):
        return _response(405, b"method not allowed: GET or HEAD\n")
    if path == "/healthz":
        return _response(200, b"ok", head=head)
    try:
        text = metrics.render()
    except Exception:
        # A broken metric must not take the agent down; the scraper records a failed scrape.
        _log.exception("cannot render the metrics")
        return _response(500, b"cannot render the metrics; see the agent's log\n", head=head)
    return _response(200, text.encode(), content_type=CONTENT_TYPE, head=head)


def _response(status: int, body: bytes, *, content_type: str = _TEXT, head: bool = False) -> bytes:
    headers = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if status == 405:
        headers.append("Allow: GET, HEAD")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + (b"" if head else body)
