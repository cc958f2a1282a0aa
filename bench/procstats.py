"""Per-process figures from /proc: peak resident memory and CPU seconds (Linux only)."""

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_vm_hwm_kib(status_text: str) -> int:
    """VmHWM (peak RSS) in KiB from the text of /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise ValueError("no VmHWM line in /proc/<pid>/status")


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a live process, in MiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    return parse_vm_hwm_kib(text) / 1024


def parse_cpu_ticks(stat_text: str) -> int:
    """utime + stime (clock ticks) from /proc/<pid>/stat.

    The command name (field 2) may contain spaces and parentheses, so fields are
    counted from the last ')'; utime and stime are fields 14 and 15.
    """
    rest = stat_text.rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state), so field n is rest[n - 3].
    return int(rest[14 - 3]) + int(rest[15 - 3])


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far."""
    return parse_cpu_ticks(Path(f"/proc/{pid}/stat").read_text()) / CLOCK_TICKS
