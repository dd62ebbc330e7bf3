"""A one-line text progress bar on stderr: done/total, rate and time left."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

_BAR_WIDTH = 24


class ProgressBar:
    """Redrawn in place at most `redraw_s` apart on a terminal; elsewhere a line per ~10 %.

    Call it with (done, total) as work finishes, then `finish()` for the final line.
    """

    def __init__(
        self,
        label: str,
        unit: str,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        redraw_s: float = 0.25,
    ) -> None:
        self._label = label
        self._unit = unit
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._clock = clock
        self._redraw_s = redraw_s
        self._started = clock()
        self._shown_at = -redraw_s
        self._tenths_shown = 0
        self._done = 0.0
        self._total = 0.0

    def __call__(self, done: float, total: float) -> None:
        self._done, self._total = done, total
        now = self._clock()
        if self._tty:
            if now - self._shown_at >= self._redraw_s:
                self._shown_at = now
                self._stream.write("\r" + self._line(now))
                self._stream.flush()
        elif total > 0 and (tenths := int(10 * done / total)) > self._tenths_shown and done < total:
            self._tenths_shown = tenths
            self._stream.write(self._line(now) + "\n")
            self._stream.flush()

    def finish(self) -> None:
        """The final line: the whole run's figures."""
        line = self._line(self._clock(), final=True)
        self._stream.write(("\r" + line + "\x1b[K" if self._tty else line) + "\n")
        self._stream.flush()

    def _line(self, now: float, final: bool = False) -> str:
        elapsed = max(now - self._started, 1e-9)
        done, total = self._done, self._total
        frac = min(1.0, done / total) if total > 0 else 0.0
        filled = round(frac * _BAR_WIDTH)
        rate = done / elapsed
        head = (
            f"{self._label} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] "
            f"{_num(done)}/{_num(total)} {self._unit}, {rate:.2f} {self._unit}/s"
        )
        if final:
            return f"{head}, {elapsed:.1f} s"
        eta = (total - done) / rate if rate > 0 else float("inf")
        return f"{head}, ETA {_duration(eta)}"


def _num(value: float) -> str:
    return f"{value:.0f}" if value == round(value) else f"{value:.1f}"


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
