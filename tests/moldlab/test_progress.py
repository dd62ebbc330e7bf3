"""The text progress bar: redrawn in place on a terminal, a line per ~10 % elsewhere."""

from __future__ import annotations

import io

from moldlab.progress import ProgressBar


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_terminal_a_line_per_tenth_and_a_final_line() -> None:
    out, clock = io.StringIO(), _Clock()
    bar = ProgressBar("export", "machine-days", stream=out, clock=clock)
    for done in range(1, 31):
        clock.t += 0.5
        bar(done, 30)
    bar.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10  # 10 %, 20 %, ... 90 %, then the final line
    assert lines[0] == (
        "export [##......................] 3/30 machine-days, 2.00 machine-days/s, ETA 14 s"
    )
    assert lines[-1] == (
        "export [########################] 30/30 machine-days, 2.00 machine-days/s, 15.0 s"
    )
    assert "\r" not in out.getvalue()


def test_terminal_redraws_in_place_at_most_every_redraw_interval() -> None:
    out, clock = _Terminal(), _Clock()
    bar = ProgressBar("export", "machine-days", stream=out, clock=clock, redraw_s=0.25)
    for done in range(1, 101):
        clock.t += 0.01  # 100 updates in 1 s: 4 or 5 redraws
        bar(done / 10, 10)
    bar.finish()
    text = out.getvalue()
    assert 4 <= text.count("\r") - 1 <= 5
    assert text.endswith("10/10 machine-days, 10.00 machine-days/s, 1.0 s\x1b[K\n")
    assert text.count("\n") == 1


def test_eta_reads_in_minutes_and_hours() -> None:
    out, clock = io.StringIO(), _Clock()
    bar = ProgressBar("export", "machine-days", stream=out, clock=clock)
    clock.t += 60.0
    bar(1.5, 10)
    clock.t += 7200.0
    bar(2.5, 1000)  # 2 % of a new total: no line
    bar(200.0, 1000)
    assert "1/10" not in out.getvalue()
    assert out.getvalue().splitlines() == [
        "export [####....................] 1.5/10 machine-days, 0.03 machine-days/s, "
        "ETA 5 min 40 s",
        "export [#####...................] 200/1000 machine-days, 0.03 machine-days/s, "
        "ETA 8 h 04 min",
    ]
