"""Whether a process id still names a running process: shared by the serving agent (waiting
for replicas to drain) and infra's emulator launcher (stopping moto by pid)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while `pid` runs. A zombie (exited, not yet reaped by its parent) counts as exited;
    a zombie main thread with other threads still running is a process on its way out, alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        return not os.path.isdir("/proc/self")  # no procfs (not Linux): kill(0) said it exists
    return not ("\nState:\tZ" in status and "\nThreads:\t1\n" in status)
