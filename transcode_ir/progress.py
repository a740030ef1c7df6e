"""Progress of long steps, on stderr, only on a terminal.

:func:`stage` wraps a step that can take more than a few seconds (exporting
a model with torch, running the passes, mapping, simulating, training)::

    with stage("running passes"):
        ...

On a terminal, stderr shows ``running passes... 12s`` redrawn in place every
half second while the step runs (so a long compile is never silent), then
the line is cleared.  With a known amount of work, :meth:`Stage.advance`
adds ``k/N`` and an estimate of the time left, measured from the rate since
the *first* unit finished (start-up -- imports, worker processes, the first
compilation of a kernel -- is not extrapolated, which made the first
estimate of a 31 s run read 22m55s).  Not on a terminal (a pipe, a log
file, a test): nothing is drawn.  Either way the step's duration is logged
at INFO (``tcc -v`` shows it).

Standard library only: the core imports nothing above it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import time
from collections.abc import Iterator

__all__ = ["Stage", "eta_text", "stage"]

_log = logging.getLogger("tcc.progress")
_lock = threading.Lock()


def _duration(seconds: float) -> str:
    if math.isnan(seconds) or math.isinf(seconds):
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def eta_text(done: int, total: int, first_done: int | None, first_time: float | None,
             now: float) -> str:
    """``left 1m05s`` from the rate since the first finished unit, or
    ``left ?`` until a second unit finishes."""
    if first_done is None or first_time is None or done <= first_done or now <= first_time:
        return "left ?"
    rate = (done - first_done) / (now - first_time)
    return f"left {_duration((total - done) / rate)}"


class Stage:
    """One running step (see the module docstring)."""

    def __init__(self, label: str, total: int | None = None, stream=None,  # noqa: ANN001
                 interval: float = 0.5) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.started = time.monotonic()
        self._first: tuple[int, float] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0

    def advance(self, done: int | None = None) -> None:
        """One more unit finished (or ``done`` units in all)."""
        self.done = self.done + 1 if done is None else done
        if self._first is None and self.done > 0:
            self._first = (self.done, time.monotonic())
        self._draw()

    def text(self) -> str:
        now = time.monotonic()
        out = f"{self.label}... {_duration(now - self.started)}"
        if self.total:
            first = self._first or (None, None)
            out += f"  {self.done}/{self.total}  " + eta_text(self.done, self.total, first[0],
                                                            first[1], now)
        return out

    def _draw(self) -> None:
        if not self.tty:
            return
        with _lock:
            text = self.text()
            self.stream.write("\r" + text + " " * max(self._width - len(text), 0))
            self.stream.flush()
            self._width = len(text)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def __enter__(self) -> Stage:
        _log.debug("%s...", self.label)
        if self.tty:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"progress {self.label}")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.tty and self._width:
            with _lock:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
        _log.info("%s: %.1f s", self.label, time.monotonic() - self.started)


@contextlib.contextmanager
def stage(label: str, total: int | None = None) -> Iterator[Stage]:
    """A :class:`Stage` for the ``with`` block."""
    with Stage(label, total) as running:
        yield running
