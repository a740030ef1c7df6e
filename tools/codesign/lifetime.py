"""Processes that end with their parent, and who owns what (for claims).

A sweep starts child processes: the local pool's workers (and
multiprocessing's resource tracker), or a local Ray instance (GCS server,
raylet, its agents and worker processes).  When the sweep is killed hard
(``kill -9``, OOM killer) nothing in it runs any more, so the children must
notice by themselves:

* pool workers: :func:`end_with_parent` -- ``prctl(PR_SET_PDEATHSIG,
  SIGKILL)`` on Linux (the kernel kills the worker the moment its parent
  dies) and, on every platform, a daemon thread that exits the worker when
  its parent process changes (checked every quarter second).  The resource
  tracker exits by itself once the last process holding its pipe is gone.
* a local Ray instance: :class:`Watchdog` -- a small stdlib-only process
  (``_watchdog.py``) that the sweep starts before Ray.  It remembers the
  sweep's descendants (re-reading ``/proc`` every second) and, if the sweep
  goes away without saying goodbye, terminates them (SIGTERM, then SIGKILL
  after two seconds).  Ray ends its GCS server, raylet and workers itself
  when the driver dies, but not its dashboard and runtime-env agents (they
  were still running a minute after a ``kill -9`` of the driver).

:func:`owner_identity` and :func:`owner_alive` name a process so that a
claim it holds in a results database can be judged abandoned: a process on
this machine (same host name and boot) is alive while its pid runs with the
same start time; for other machines only the claim's heartbeat tells.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Owner", "Watchdog", "end_with_parent", "owner_alive", "owner_identity",
           "process_start_time"]

PR_SET_PDEATHSIG = 1


def end_with_parent(parent_pid: int, kernel_signal: bool = True) -> None:
    """Make this process exit when ``parent_pid`` (its parent) dies.

    ``kernel_signal``: also ask Linux for SIGKILL at the parent's death
    (``PR_SET_PDEATHSIG``).  The kernel sends it when the *thread* that
    created this process exits, so the caller passes False when the process
    was not started from its parent's main thread."""
    if kernel_signal and sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:          # it died before we asked
        os._exit(1)

    def watch() -> None:
        import time

        while True:
            time.sleep(0.25)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# -- process identities ---------------------------------------------------------

def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (Linux ``/proc``);
    None when it does not run (or is a zombie), 0 when this platform cannot
    tell (no ``/proc``) but the pid exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0
        return 0
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "-"


@dataclass(frozen=True)
class Owner:
    """A process that holds claims: ``machine`` (host name and boot id),
    ``pid`` and its ``start`` time (ticks since boot; 0 if unknown)."""

    machine: str
    pid: int
    start: int

    @property
    def label(self) -> str:
        return f"{self.machine}:{self.pid}:{self.start}"


def owner_identity() -> Owner:
    pid = os.getpid()
    return Owner(f"{socket.gethostname()}/{_boot_id()}", pid, process_start_time(pid) or 0)


def owner_alive(machine: str, pid: int, start: int) -> bool | None:
    """True/False for a process on this machine; None when it runs elsewhere
    (only its heartbeat can tell)."""
    if machine != owner_identity().machine:
        return None
    now = process_start_time(pid)
    if now is None:
        return False
    return now == start or 0 in (now, start)


# -- the watchdog -----------------------------------------------------------------

class Watchdog:
    """Terminates this process's descendants if it dies without :meth:`close`
    (see the module docstring).  Does nothing where there is no ``/proc``."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        if not Path("/proc/self/stat").exists():
            return
        script = Path(__file__).with_name("_watchdog.py")
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(script), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def close(self) -> None:
        """Stop watching (the parent is ending normally: nothing is killed)."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.write(b"bye\n")
            process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Watchdog:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
