"""CPU time of processes from Linux's ``/proc/PID/stat``, for the benchmarks' per-process figures."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TICKS_PER_S", "cpu_s", "stat"]

#: Clock ticks per second, the unit of ``/proc`` CPU times.
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def stat(pid: int | str = "self") -> tuple[int, int] | None:
    """``(parent pid, CPU clock ticks used so far, user + system, all threads)`` of a process, or
    None when it is gone."""
    try:
        # The command name (field 2) may hold spaces and parentheses: split after its last ")".
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[11]) + int(fields[12])


def cpu_s(pid: int | str = "self") -> float:
    """CPU seconds a process has used so far; 0 when it is gone."""
    found = stat(pid)
    return 0.0 if found is None else found[1] / TICKS_PER_S
