"""Progress on stderr: only on a terminal, with an estimate of the time left
that does not extrapolate start-up (issue 14: a first ETA of 22m55s for a
31 s run)."""

from __future__ import annotations

import io
import time

from tools.codesign.progress import Progress
from transcode_ir.progress import Stage, eta_text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_eta_ignores_start_up() -> None:
    # 10 s of start-up, then one evaluation per second: 60 done of 100 at t=70
    assert eta_text(1, 100, None, None, 11.0) == "left ?"
    assert eta_text(1, 100, 1, 11.0, 11.0) == "left ?"           # one point: no rate yet
    assert eta_text(60, 100, 1, 11.0, 70.0) == "left 40s"         # 59 in 59 s -> 40 s left


def test_sweep_progress_is_quiet_off_a_terminal_and_honest_on_one(monkeypatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    piped = io.StringIO()
    quiet = Progress(piped)
    quiet.start(10, "s")
    quiet.update(10, 10, 0, 0, 0.5)
    assert piped.getvalue() == ""
    terminal = _Terminal()
    progress = Progress(terminal)
    progress.start(100, "s")
    clock[0] = 10.0                                             # start-up: 10 s
    progress.update(1, 1, 0, 0, 0.4)
    assert terminal.getvalue().endswith("left ?")
    clock[0] = 20.0                                             # then 1 evaluation/s
    progress.update(11, 11, 0, 0, 0.4)
    assert terminal.getvalue().endswith("left 1m29s")           # 89 left at 1/s; not 16m30s


def test_stage_draws_only_on_a_terminal() -> None:
    piped = io.StringIO()
    with Stage("mapping", stream=piped):
        pass
    assert piped.getvalue() == ""
    terminal = _Terminal()
    with Stage("mapping", total=4, stream=terminal, interval=0.01) as running:
        running.advance()
        time.sleep(0.05)
    assert "mapping... " in terminal.getvalue() and "1/4" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r")                  # the line is cleared at the end
