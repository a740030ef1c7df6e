"""A live progress line on stderr: evaluations, best so far, time left.

On a terminal the line redraws in place (``\\r``); otherwise (a log file, a
CI job) it prints a plain line at most every ``interval`` seconds and at the
end, so logs stay readable.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

__all__ = ["Progress", "SilentProgress"]


def _duration(seconds: float) -> str:
    if math.isnan(seconds) or math.isinf(seconds):
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


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
                 width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.width = width
        self._last = 0.0
        self._line_length = 0

    def start(self, total: int, label: str) -> None:
        self.total = max(total, 1)
        self.label = label
        self.started = time.monotonic()
        self._done_at_start: int | None = None
        self._last = 0.0

    def update(self, done: int, evaluated: int, reused: int, failed: int,
               best: float | None) -> None:
        now = time.monotonic()
        if self._done_at_start is None:
            self._done_at_start = done - evaluated - reused
        final = done >= self.total
        if not self.tty and not final and now - self._last < self.interval:
            return
        if self.tty and not final and now - self._last < 0.1:
            return
        self._last = now
        elapsed = now - self.started
        progressed = done - (self._done_at_start or 0)
        rate = evaluated / elapsed if elapsed > 0 else 0.0
        left = (self.total - done) * elapsed / progressed if progressed else float("inf")
        best_text = f"{best:.5f}" if best is not None and math.isfinite(best) else "-"
        filled = int(self.width * done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        text = (f"{self.label} [{bar}] {done}/{self.total}  evaluated {evaluated}"
                f" (+{reused} from db, {failed} failed)  best {best_text}  "
                f"{rate:.3g} eval/s  left {_duration(left)}")
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
