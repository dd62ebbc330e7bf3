"""Rejected messages: stored once each as a bounded excerpt, logged a bounded number of times.

A refused payload may be 8 MiB of garbage and arrive ten thousand times a minute. Each is
stored once (the same bytes on the same topic are one rejection: a SHA-256 digest of the
whole message is unique), as its first EXCERPT_BYTES bytes and its size; rejections older
than MOLDLAB_INGEST_REJECTED_KEEP_DAYS are pruned (ingest.retention). The log gets one line
per rejection, cut to a bounded length, up to LOG_PER_MINUTE a minute, and then one line
saying how many more there were.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Final

log = logging.getLogger("ingest.writer")

EXCERPT_BYTES: Final = 4096
TOPIC_CHARS: Final = 512
LOG_PER_MINUTE: Final = 20
_LOG_TOPIC_CHARS: Final = 160
_LOG_REASON_CHARS: Final = 300  # a reason quotes bits of the message; the row keeps 1000

INSERT_REJECTED: Final = (
    "INSERT INTO rejected_message (topic, payload, payload_bytes, reason, digest)"
    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (digest) DO NOTHING"
)


def rejected_row(topic: str, payload: bytes, reason: str) -> tuple[str, bytes, int, str, bytes]:
    """The rejected_message row of a refused message: excerpts, its size and its digest."""
    digest = hashlib.sha256(topic.encode(errors="replace") + b"\0" + payload).digest()
    # PostgreSQL's text takes no NUL: shown escaped, the row is still written.
    shown, why = topic[:TOPIC_CHARS].replace("\0", "\\x00"), reason[:1000].replace("\0", "\\x00")
    return (shown, payload[:EXCERPT_BYTES], len(payload), why, digest)


class RejectLog:
    """One bounded WARNING line per rejection, at most LOG_PER_MINUTE a minute."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._window_start = clock()
        self._logged = 0
        self._held_back = 0

    def rejected(self, topic: str, reason: str) -> None:
        now = self._clock()
        if now - self._window_start >= 60.0:
            if self._held_back:
                log.warning(
                    "%d more rejected messages in the last minute were not logged one by one "
                    "(see rejected_message and moldlab_ingest_rejected_total)",
                    self._held_back,
                )
            self._window_start, self._logged, self._held_back = now, 0, 0
        if self._logged < LOG_PER_MINUTE:
            self._logged += 1
            log.warning(
                "rejected a message on %s: %s",
                printable(topic, _LOG_TOPIC_CHARS), printable(reason, _LOG_REASON_CHARS),
            )  # fmt: skip
        else:
            self._held_back += 1


def printable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with what is not printable escaped: a U+2028 or a
    right-to-left override from a publisher must not forge or reorder a log line."""
    cut = text if len(text) <= limit else text[:limit] + "…"
    if cut.isprintable():
        return cut
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in cut)
