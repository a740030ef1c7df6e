"""The sweep watchdog process (stdlib only; run as a script by lifetime.Watchdog).

    python -I -S _watchdog.py PARENT_PID      (stdin: a pipe from the parent)

Every second it records the parent's descendants that appeared after it
started (pid and start time, from /proc).  "bye" on stdin means the parent is
ending normally: exit without touching anything.  End of file without "bye",
or a changed parent pid, means the parent died: every recorded process still
running with the same start time gets SIGTERM, and SIGKILL two seconds later
if it is still there.
"""

import os
import select
import signal
import sys
import time


def _stat(pid):
    """(parent pid, start time) of a running process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[19])


def _descendants(root):
    children = {}
    starts = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        info = _stat(int(name))
        if info is None:
            continue
        children.setdefault(info[0], []).append(int(name))
        starts[int(name)] = info[1]
    out, stack = {}, [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in out:
                out[child] = starts[child]
                stack.append(child)
    return out


def _terminate(recorded):
    alive = {pid: start for pid, start in recorded.items()
             if (_stat(pid) or (0, None))[1] == start}
    # Processes started by the recorded ones since the last look (their parent
    # died too) are found through their recorded ancestors.
    for pid in list(alive):
        for child, start in _descendants(pid).items():
            alive.setdefault(child, start)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + 2.0
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {pid: start for pid, start in alive.items()
                 if (_stat(pid) or (0, None))[1] == start}
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def main():
    parent = int(sys.argv[1])
    me = os.getpid()
    before = set(_descendants(parent))
    recorded = {}
    stdin = sys.stdin.buffer
    while True:
        if os.getppid() != parent:
            break
        ready, _, _ = select.select([stdin], [], [], 1.0)
        if ready:
            line = stdin.readline()
            if line.strip() == b"bye":
                return
            if not line:
                break
        for pid, start in _descendants(parent).items():
            if pid != me and pid not in before:
                recorded[pid] = start
        recorded = {pid: start for pid, start in recorded.items()
                    if (_stat(pid) or (0, None))[1] == start}
    _terminate(recorded)


if __name__ == "__main__":
    main()
