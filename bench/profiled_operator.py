"""`gamevm-operator run` under cProfile and/or tracemalloc (bench only).

- GAMEVM_BENCH_PROFILE=<file.prof>: cProfile of the event-loop thread (handlers, kopf,
  parsing; the Kubernetes client's worker threads are not profiled), written when the
  operator exits (SIGTERM makes kopf stop cleanly, so the file is complete). With
  GAMEVM_BENCH_PROFILE_WINDOW=1 the profiler starts off: the first SIGUSR2 starts it, the
  second stops it and writes the file (the steady run profiles its measured window only).
- GAMEVM_BENCH_TRACEMALLOC=<file.txt>: allocation tracing; SIGUSR1 writes the top
  allocation sites of live memory to the file (the bench sends it when every VM runs).
"""

import cProfile
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

from gamevm.cli import main

TOP_SITES = 40


def _write_memory_top(path: Path) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    stats = snapshot.statistics("lineno")
    total = sum(stat.size for stat in stats)
    lines = [f"traced live memory: {total / 2**20:.1f} MiB in {len(stats)} sites"]
    lines += [str(stat) for stat in stats[:TOP_SITES]]
    lines.append("")
    lines.append("by file:")
    lines += [str(stat) for stat in snapshot.statistics("filename")[:TOP_SITES]]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    prof_out = os.environ.get("GAMEVM_BENCH_PROFILE")
    mem_out = os.environ.get("GAMEVM_BENCH_TRACEMALLOC")
    profiler = cProfile.Profile() if prof_out else None
    if mem_out:
        mem_path = Path(mem_out)
        tracemalloc.start()

        def on_usr1(_sig: int, _frame: FrameType | None) -> None:
            _write_memory_top(mem_path)

        signal.signal(signal.SIGUSR1, on_usr1)
    windowed = os.environ.get("GAMEVM_BENCH_PROFILE_WINDOW") == "1"
    if profiler is not None and windowed:
        toggles = {"on": False}

        def on_usr2(_sig: int, _frame: FrameType | None) -> None:
            assert profiler is not None  # noqa: S101
            if not toggles["on"]:
                toggles["on"] = True
                profiler.enable()
            else:
                profiler.disable()
                profiler.dump_stats(str(prof_out))

        signal.signal(signal.SIGUSR2, on_usr2)
    elif profiler is not None:
        profiler.enable()
    try:
        code = main(["run", *sys.argv[1:]])
    finally:
        if profiler is not None and prof_out and not windowed:
            profiler.disable()
            profiler.dump_stats(prof_out)
    sys.exit(code)
