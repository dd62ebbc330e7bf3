"""The simulated clock of a real-time run: now, sped up, or catching up from the past."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def utc_now() -> datetime:
    return datetime.now(UTC)


class SimClock:
    """Simulated time: `start` plus the real time elapsed times `speed`.

    With `catch_up`, the clock runs at `speed` only until it reaches the wall clock and then
    keeps pace with it: a backfill (`--start -7d --speed 600`) that ends in a live floor,
    whose timestamps never run ahead of the plant's.
    """

    def __init__(
        self,
        start: datetime,
        speed: float = 1.0,
        *,
        catch_up: bool = False,
        wall: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self.start = start
        self.speed = speed
        self._catch_up = catch_up
        self._wall = wall
        self._monotonic = monotonic
        self._real_start = monotonic()

    def now(self) -> datetime:
        elapsed_s = (self._monotonic() - self._real_start) * self.speed
        sim = self.start + timedelta(seconds=elapsed_s)
        return min(sim, self._wall()) if self._catch_up else sim


def parse_start(text: str, now: datetime) -> datetime:
    """`--start`: an ISO 8601 time with its zone, or a time before `now` like -7d, -12h, -30m."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    if text.startswith("-") and text[-1:] in units:
        try:
            amount = float(text[1:-1])
        except ValueError:
            raise ValueError(f"{text!r}: expected e.g. -7d, -12h or -30m") from None
        return now - timedelta(seconds=amount * units[text[-1]])
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO 8601 time (2026-11-02T06:00+01:00) nor like -7d"
        ) from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add one, e.g. +01:00 or Z")
    return value.astimezone(UTC)
