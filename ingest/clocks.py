"""Publishers' clocks: how far each gateway's clock is from ingest's, reported when too far.

A gateway stamps readings with its own clock (a Pi without NTP boots with the time it shut
down at). Each valid message gives `ahead` = its newest reading's time - its arrival; a
message that waited in an outbox only looks further behind, so the largest `ahead` of a
window (a minute) is the clock's offset, give or take the network and batching (under a
second or two). Each window's figure is a gauge per gateway; a gateway beyond
`max_skew_s` is logged once when it goes past and once when it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from prometheus_client import Gauge

log = logging.getLogger(__name__)

_WINDOW_S = 60.0
MAX_GATEWAYS = 1_000  # gauges kept, against a flood of made-up sources


class Clocks:
    """The clock offset of each publisher (the part of a source before ":"), per window."""

    def __init__(
        self,
        gauge: Gauge,
        max_skew_s: float,
        *,
        window_s: float = _WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gauge = gauge
        self.max_skew_s = max_skew_s
        self._window_s = window_s
        self._clock = clock
        self._started = clock()
        self._window: dict[str, float] = {}
        self.offsets: dict[str, float] = {}  # the last complete window's, by gateway
        self._off: set[str] = set()  # gateways reported beyond max_skew_s
        self._full_told = False

    def observe(self, ahead_s: Mapping[str, float]) -> None:
        """Take a committed batch's largest `ahead` per gateway; close the window if due."""
        window = self._window
        for gateway, ahead in ahead_s.items():
            known = window.get(gateway)
            if known is not None:
                window[gateway] = max(known, ahead)
            elif len(self.offsets) + len(window) < MAX_GATEWAYS or gateway in self.offsets:
                window[gateway] = ahead
            elif not self._full_told:
                self._full_told = True
                log.warning(
                    "clock offsets are kept for %d publishers; %s and later ones are not",
                    MAX_GATEWAYS,
                    gateway,
                )
        if self._clock() - self._started >= self._window_s:
            self.roll()

    def roll(self) -> None:
        """Close the window: its offsets become the gauges; report who went past or came back."""
        self._started = self._clock()
        window, self._window = self._window, {}
        for gateway, ahead in window.items():
            self._gauge.labels(gateway).set(round(ahead, 3))
            off = abs(ahead) > self.max_skew_s
            if off and gateway not in self._off:
                self._off.add(gateway)
                log.warning(
                    "the clock of %s is %.0f s %s ingest's (its freshest message in the last "
                    "%.0f s); its data is stored at its own times: check its NTP",
                    gateway, abs(ahead), "ahead of" if ahead > 0 else "behind",
                    self._window_s,
                )  # fmt: skip
            elif not off and gateway in self._off:
                self._off.discard(gateway)
                log.info(
                    "the clock of %s is within %.0f s of ingest's again", gateway, self.max_skew_s
                )
        self.offsets.update(window)
