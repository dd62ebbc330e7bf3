"""The edge's Prometheus endpoint: exposition text (exact, escaped, parseable) and its HTTP."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import math
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest

import edge.metrics
from edge.metrics import CONTENT_TYPE, Metrics, serve_metrics

# --- exposition text ------------------------------------------------------------------------


def _small_registry() -> Metrics:
    metrics = Metrics()
    polls = metrics.counter("moldlab_edge_polls", "Modbus polls answered.", labels=("machine",))
    polls.inc(machine="imm-02")
    polls.inc(3, machine="imm-01")
    polls.inc(machine="imm-01")
    metrics.counter("moldlab_edge_errors_total", "Errors, any kind.")  # never incremented
    queued = metrics.gauge("moldlab_edge_outbox_messages", "Messages in the outbox.")
    queued.set(12)
    queued.dec(2)
    metrics.gauge_fn("moldlab_edge_backlog_age_seconds", "Oldest unsent message.", lambda: 1.5)
    metrics.gauge_fn(
        "moldlab_edge_machine_up",
        'Answers polls: 1 "yes"\nor 0, path C:\\plc.',
        lambda: {("imm-01",): 1, ('imm "2"\nback\\slash',): 0.0},
        labels=("machine",),
    )
    odd = metrics.gauge("moldlab_edge_odd", "Odd values.", labels=("kind",))
    for kind, value in (("inf", math.inf), ("ninf", -math.inf), ("nan", math.nan),
                        ("big", 1e20), ("small", 2.5e-7)):  # fmt: skip
        odd.set(value, kind=kind)
    return metrics


EXPECTED = """\
# HELP moldlab_edge_polls_total Modbus polls answered.
# TYPE moldlab_edge_polls_total counter
moldlab_edge_polls_total{machine="imm-01"} 4
moldlab_edge_polls_total{machine="imm-02"} 1
# HELP moldlab_edge_errors_total Errors, any kind.
# TYPE moldlab_edge_errors_total counter
moldlab_edge_errors_total 0
# HELP moldlab_edge_outbox_messages Messages in the outbox.
# TYPE moldlab_edge_outbox_messages gauge
moldlab_edge_outbox_messages 10
# HELP moldlab_edge_backlog_age_seconds Oldest unsent message.
# TYPE moldlab_edge_backlog_age_seconds gauge
moldlab_edge_backlog_age_seconds 1.5
# HELP moldlab_edge_machine_up Answers polls: 1 "yes"\\nor 0, path C:\\\\plc.
# TYPE moldlab_edge_machine_up gauge
moldlab_edge_machine_up{machine="imm \\"2\\"\\nback\\\\slash"} 0.0
moldlab_edge_machine_up{machine="imm-01"} 1
# HELP moldlab_edge_odd Odd values.
# TYPE moldlab_edge_odd gauge
moldlab_edge_odd{kind="big"} 1e+20
moldlab_edge_odd{kind="inf"} +Inf
moldlab_edge_odd{kind="nan"} NaN
moldlab_edge_odd{kind="ninf"} -Inf
moldlab_edge_odd{kind="small"} 2.5e-07
"""


def test_render_is_exact_for_a_small_registry() -> None:
    assert _small_registry().render() == EXPECTED


def test_render_parses_as_exposition_text() -> None:
    text = _small_registry().render()
    samples = parse_exposition(text)
    assert samples[("moldlab_edge_polls_total", (("machine", "imm-01"),))] == 4
    assert samples[("moldlab_edge_machine_up", (("machine", 'imm "2"\nback\\slash'),))] == 0
    assert math.isnan(samples[("moldlab_edge_odd", (("kind", "nan"),))])
    assert samples[("moldlab_edge_odd", (("kind", "ninf"),))] == -math.inf
    assert len(samples) == 12


@pytest.mark.skipif(
    importlib.util.find_spec("prometheus_client") is None,
    reason="prometheus_client is not installed (the strict check above still runs)",
)
def test_render_parses_with_prometheus_client() -> None:
    parser = importlib.import_module("prometheus_client.parser")
    families = {f.name: f for f in parser.text_string_to_metric_families(EXPECTED)}
    assert families["moldlab_edge_polls"].type == "counter"
    up = {s.labels["machine"]: s.value for s in families["moldlab_edge_machine_up"].samples}
    assert up == {"imm-01": 1.0, 'imm "2"\nback\\slash': 0.0}


def test_a_counter_named_with_total_is_not_doubled_and_counts_floats() -> None:
    metrics = Metrics()
    sent = metrics.counter("sent_total", "Sent.")
    sent.inc(0.5)
    assert sent.name == "sent_total"
    assert sent.get() == 0.5
    assert (
        metrics.render() == "# HELP sent_total Sent.\n# TYPE sent_total counter\nsent_total 0.5\n"
    )


def test_labelled_metrics_without_samples_show_their_type_only() -> None:
    metrics = Metrics()
    metrics.counter("drops", "Dropped.", labels=("reason",))
    metrics.gauge_fn("up", "Up.", dict, labels=("machine",))
    assert metrics.render() == (
        "# HELP drops_total Dropped.\n# TYPE drops_total counter\n# HELP up Up.\n# TYPE up gauge\n"
    )


def test_mistakes_are_refused() -> None:
    metrics = Metrics()
    polls = metrics.counter("polls", "Polls.", labels=("machine",))
    with pytest.raises(ValueError, match="cannot go down"):
        polls.inc(-1, machine="a")
    with pytest.raises(ValueError, match=r"has labels \('machine',\), not \('host',\)"):
        polls.inc(host="a")
    with pytest.raises(ValueError, match="has labels"):
        polls.inc()
    with pytest.raises(ValueError, match="defined twice"):
        metrics.gauge("polls_total", "Again.")
    with pytest.raises(ValueError, match="not a Prometheus metric name"):
        metrics.gauge("edge-polls", "Dash.")
    with pytest.raises(ValueError, match="not a label name"):
        metrics.gauge("g", "G.", labels=("__reserved",))
    with pytest.raises(ValueError, match="named twice"):
        metrics.gauge("h", "H.", labels=("a", "a"))
    metrics.gauge_fn("flat", "A labelled gauge whose function gives one value.", lambda: 1.0,
                     labels=("machine",))  # fmt: skip
    with pytest.raises(ValueError, match="must map them"):
        metrics.render()


# A strict reader of the 0.0.4 text format, for when prometheus_client is not installed.
_HELP = re.compile(r"# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) ((?:[^\\\n]|\\[\\n])*)")
_TYPE = re.compile(r"# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)")
_LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
_SAMPLE = re.compile(
    rf"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{{(?P<labels>(?:{_LABEL},)*(?:{_LABEL})?)\}})? "
    r"(?P<value>[+-]?Inf|NaN|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
)
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_exposition(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, labels); AssertionError at the first line that breaks the format."""
    assert text.endswith("\n"), "the last line must end with a newline"
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    helped: set[str] = set()
    typed: dict[str, str] = {}
    current: str | None = None  # the family whose samples may follow
    for n, line in enumerate(text[:-1].split("\n"), 1):
        if line.startswith("# HELP "):
            m = _matched(_HELP, line, n)
            assert m[1] not in helped, f"line {n}: a second HELP for {m[1]}"
            helped.add(m[1])
        elif line.startswith("# TYPE "):
            m = _matched(_TYPE, line, n)
            assert m[1] not in typed, f"line {n}: a second TYPE for {m[1]}"
            typed[m[1]] = m[2]
            current = m[1]
        else:
            m = _matched(_SAMPLE, line, n)
            name = m["name"]
            assert name == current, f"line {n}: {name} outside its family ({current})"
            if typed[name] == "counter":
                assert name.endswith("_total"), f"line {n}: a counter not named _total"
            labels = tuple(
                (k, re.sub(r"\\[\\\"n]", lambda e: _UNESCAPE[e[0]], v))
                for k, v in re.findall(_LABEL, m["labels"] or "")
            )
            assert len({k for k, _ in labels}) == len(labels), f"line {n}: a label twice"
            key = (name, labels)
            assert key not in samples, f"line {n}: a second sample {key}"
            samples[key] = float(m["value"].replace("Inf", "inf"))
    assert helped <= set(typed), "a HELP without a TYPE"
    return samples


def _matched(pattern: re.Pattern[str], line: str, n: int) -> re.Match[str]:
    m = pattern.fullmatch(line)
    assert m is not None, f"line {n}: not valid: {line!r}"
    return m


def test_the_strict_reader_refuses_broken_text() -> None:
    good = "# TYPE a gauge\na 1\n"
    assert parse_exposition(good) == {("a", ()): 1.0}
    for bad in (
        "# TYPE a gauge\na 1",  # no final newline
        "a 1\n",  # no TYPE before it
        '# TYPE a gauge\na{x="1\n"} 1\n',  # a raw newline in a label
        '# TYPE a gauge\na{x="\\q"} 1\n',  # an unknown escape
        "# TYPE a gauge\na one\n",
        "# TYPE a counter\na 1\n",  # a counter without _total
        "# TYPE a gauge\na 1\na 2\n",
    ):
        with pytest.raises(AssertionError):
            parse_exposition(bad)


# --- the HTTP endpoint ----------------------------------------------------------------------


@pytest.fixture
async def endpoint(caplog: pytest.LogCaptureFixture) -> AsyncIterator[tuple[Metrics, int]]:
    metrics = _small_registry()
    with caplog.at_level(logging.INFO, logger="edge.metrics"):
        server = await serve_metrics(metrics, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        logged = [r.getMessage() for r in caplog.records if r.name == "edge.metrics"]
        assert logged == [f"metrics at http://127.0.0.1:{port}/metrics"]
        yield metrics, port


async def _exchange(
    port: int, request: bytes, *, half_close: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes (then EOF, if half_close), read to EOF: status, headers, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        if half_close:
            writer.write_eof()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    version, status, _reason = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    if not request.startswith(b"HEAD"):
        assert int(headers["content-length"]) == len(body)
    return int(status), headers, body


async def test_get_metrics_answers_the_exposition_text(endpoint: tuple[Metrics, int]) -> None:
    metrics, port = endpoint
    request = b"GET /metrics HTTP/1.1\r\nHost: pi\r\nAccept: text/plain\r\n\r\n"
    status, headers, body = await _exchange(port, request)
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8" == CONTENT_TYPE
    assert headers["connection"] == "close"
    assert body.decode() == EXPECTED
    parse_exposition(body.decode())
    # Live: a scrape shows what the agent counted since.
    metrics.gauge_fn("late", "Added later.", lambda: 7)
    status, _, body = await _exchange(port, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n")
    assert status == 200
    assert body.decode().endswith("# TYPE late gauge\nlate 7\n")


async def test_a_real_http_client_scrapes_and_checks_health(endpoint: tuple[Metrics, int]) -> None:
    _, port = endpoint

    def get(path: str) -> tuple[int, str, bytes]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()

    status, content_type, body = await asyncio.to_thread(get, "/metrics")
    assert (status, content_type, body.decode()) == (200, CONTENT_TYPE, EXPECTED)
    assert await asyncio.to_thread(get, "/healthz") == (200, "text/plain; charset=utf-8", b"ok")
    with pytest.raises(urllib.error.HTTPError) as caught:
        await asyncio.to_thread(get, "/admin")
    assert caught.value.code == 404


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"GET /healthz HTTP/1.1\r\n\r\n", 200),
        (b"GET / HTTP/1.1\r\n\r\n", 404),
        (b"GET /metrics/extra HTTP/1.1\r\n\r\n", 404),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"DELETE /healthz HTTP/1.1\r\n\r\n", 405),
        (b"HELLO\r\n\r\n", 400),
        (b"GET /metrics\r\n\r\n", 400),  # HTTP/0.9
        (b"GET /metrics HTTP/2.0\r\n\r\n", 400),
        (b"get /metrics HTTP/1.1\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 10_000 + b"\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: pi\r\n", 400),  # closed before the blank line
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # a TLS hello
    ],
)
async def test_status_codes(
    endpoint: tuple[Metrics, int], request_bytes: bytes, expected: int
) -> None:
    _, port = endpoint
    status, headers, body = await _exchange(port, request_bytes, half_close=True)
    assert status == expected, body
    if expected == 405:
        assert headers["allow"] == "GET, HEAD"
    if expected == 200:
        assert body == b"ok"


async def test_head_gets_the_headers_only(endpoint: tuple[Metrics, int]) -> None:
    _, port = endpoint
    status, headers, body = await _exchange(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert (status, body) == (200, b"")
    assert int(headers["content-length"]) == len(EXPECTED.encode())


async def test_a_stuck_client_is_cut_off_and_others_still_served(
    endpoint: tuple[Metrics, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port = endpoint
    monkeypatch.setattr(edge.metrics, "REQUEST_TIMEOUT_S", 0.3)
    stuck_reader, stuck_writer = await asyncio.open_connection("127.0.0.1", port)
    silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", port)
    stuck_writer.write(b"GET /metrics HTTP/1.1\r\nHost: p")  # and never the rest
    # Meanwhile others are answered, and one that connects and leaves harms nothing.
    _, leaver = await asyncio.open_connection("127.0.0.1", port)
    leaver.close()
    status, _, _ = await _exchange(port, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert status == 200
    for reader in (stuck_reader, silent_reader):
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    stuck_writer.close()
    silent_writer.close()
    status, _, _ = await _exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
    assert status == 200


async def test_a_failing_metric_is_a_500_and_the_server_lives_on(
    endpoint: tuple[Metrics, int], caplog: pytest.LogCaptureFixture
) -> None:
    metrics, port = endpoint

    def broken() -> Any:
        raise RuntimeError("outbox closed")

    metrics.gauge_fn("broken", "Raises.", broken)
    with caplog.at_level(logging.ERROR, logger="edge.metrics"):
        status, _, body = await _exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
    assert status == 500
    assert b"see the agent's log" in body
    assert "cannot render the metrics" in caplog.text
    assert "outbox closed" in caplog.text
    status, _, body = await _exchange(port, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert (status, body) == (200, b"ok")
