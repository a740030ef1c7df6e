"""A live progress line on stderr: evaluations, best so far, time left.

On a terminal the line redraws in place (``\\r``).  Not on a terminal (a
pipe, a log file, a CI job) it is quiet unless ``plain=True``, which prints a
plain line at most every ``interval`` seconds and at the end.

The time left is measured from the rate since the *first* evaluation of this
run finished: start-up (worker processes, model preparation) is not
extrapolated over the whole budget -- with it, the first estimate of a 31 s
run read 22m55s.  Until a second evaluation finishes it reads ``left ?``.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

__all__ = ["Progress", "SilentProgress"]




class SilentProgress:
    """Progress that says nothing (the Python API's default)."""

    def start(self, total: int, label: str) -> None:
        pass

    def update(self, done: int, evaluated: int, reused: int, failed: int,
               best: float | None) -> None:
        pass

    def finish(self, message: str = "") -> None:
        pass


class Progress(SilentProgress):
    """Progress bar on ``stream`` (stderr by default; see module docstring)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 5.0,
                 width: int = 24, plain: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.plain = plain
        self.interval = interval
        self.width = width
        self._last = 0.0
        self._line_length = 0

    def start(self, total: int, label: str) -> None:
        self.total = max(total, 1)
        self.label = label
        self.started = time.monotonic()
        self._done_at_start: int | None = None
        self._first: tuple[int, float] | None = None     # (done, time) at the 1st evaluation
        self._last = 0.0

    def update(self, done: int, evaluated: int, reused: int, failed: int,
               best: float | None) -> None:
        now = time.monotonic()
        if self._done_at_start is None:
            self._done_at_start = done - evaluated - reused
        if self._first is None and evaluated > 0:
            self._first = (done, now)
        if not self.tty and not self.plain:
            return
        final = done >= self.total
        if not self.tty and not final and now - self._last < self.interval:
            return
        if self.tty and not final and now - self._last < 0.1:
            return
        self._last = now
        elapsed = now - self.started
        rate = evaluated / elapsed if elapsed > 0 else 0.0
        from transcode_ir.progress import eta_text

        first = self._first or (None, None)
        left_text = eta_text(done, self.total, first[0], first[1], now)
        best_text = f"{best:.5f}" if best is not None and math.isfinite(best) else "-"
        filled = int(self.width * done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        text = (f"{self.label} [{bar}] {done}/{self.total}  evaluated {evaluated}"
                f" (+{reused} from db, {failed} failed)  best {best_text}  "
                f"{rate:.3g} eval/s  {left_text}")
        if self.tty:
            pad = max(self._line_length - len(text), 0)
            self.stream.write("\r" + text + " " * pad)
            self._line_length = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self, message: str = "") -> None:
        if self.tty and self._line_length:
            self.stream.write("\n")
        if message:
            self.stream.write(message + "\n")
        self.stream.flush()
