"""Per-process figures from /proc: resident memory and CPU (Linux only)."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_status_kib(status_text: str, field: str) -> int:
    """A size field (VmHWM, VmRSS, ...) in KiB from the text of /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"no {field} line in /proc/<pid>/status")


def parse_vm_hwm_kib(status_text: str) -> int:
    """VmHWM (peak RSS) in KiB from the text of /proc/<pid>/status."""
    return parse_status_kib(status_text, "VmHWM")


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a live process, in MiB (start-up included)."""
    return parse_vm_hwm_kib(Path(f"/proc/{pid}/status").read_text()) / 1024


def rss_mb(pid: int) -> float:
    """Resident set size of a live process now, in MiB."""
    return parse_status_kib(Path(f"/proc/{pid}/status").read_text(), "VmRSS") / 1024


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


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds of some processes at one moment (time.monotonic())."""

    at: float
    seconds: dict[int, float]


def sample_cpu(*pids: int) -> CpuSample:
    """The CPU seconds each live process has used so far, and when."""
    return CpuSample(time.monotonic(), {pid: cpu_seconds(pid) for pid in pids})


def cpu_percent(before: CpuSample, after: CpuSample, pid: int) -> float:
    """CPU `pid` used between two samples, in % of one core."""
    return 100 * (after.seconds[pid] - before.seconds[pid]) / (after.at - before.at)
