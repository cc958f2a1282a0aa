"""`gamevm-operator run` under cProfile and/or tracemalloc (bench only).

- GAMEVM_BENCH_PROFILE=<file.prof>: cProfile of the event-loop thread (handlers, kopf,
  parsing; the Kubernetes client's worker threads are not profiled), written when the
  operator exits (SIGTERM makes kopf stop cleanly, so the file is complete). With
  GAMEVM_BENCH_PROFILE_WINDOW=1 the profiler starts off: the first SIGUSR2 starts it, the
  second stops it and writes the file (the steady run profiles its measured window only).
- GAMEVM_BENCH_TRACEMALLOC=<file.txt>: allocation tracing; each SIGUSR1 writes the top
  allocation sites of live memory to the file, the snapshot to `<file.txt>.<k>.snap` (k =
  0, 1, ...: the steady run compares the window's first and last) and glibc's
  `malloc_info` (arenas: bytes held from the system against bytes in use) to
  `<file.txt>.<k>.malloc.xml`. GAMEVM_BENCH_TRACEMALLOC_FRAMES=<n> keeps n frames per
  allocation (default 1; the top sites then also come grouped by traceback).
  GAMEVM_BENCH_UNTRACED=1: no tracing (RSS as in production), SIGUSR1 writes only the
  malloc_info and pymalloc's arena statistics (`<file.txt>.<k>.pymalloc.txt`).
  `<file.txt>.<k>.done` says each is complete.
"""

import cProfile
import ctypes
import ctypes.util
import itertools
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

from gamevm.cli import main

TOP_SITES = 40


def _write_malloc_info(path: Path) -> None:
    """glibc's malloc_info XML (per arena: system bytes, free chunks); nothing elsewhere."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "malloc_info"):
        return
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    stream = libc.fopen(str(path).encode(), b"w")
    if stream:
        libc.malloc_info(0, stream)
        libc.fclose(stream)


def _write_pymalloc_stats(path: Path) -> None:
    """sys._debugmallocstats (it prints to the C stderr) into `path`."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with path.open("w") as out:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _write_untraced(path: Path, k: int) -> None:
    _write_malloc_info(path.with_name(f"{path.name}.{k}.malloc.xml"))
    _write_pymalloc_stats(path.with_name(f"{path.name}.{k}.pymalloc.txt"))
    path.with_name(f"{path.name}.{k}.done").touch()


def _write_memory_top(path: Path, k: int) -> None:
    _write_malloc_info(path.with_name(f"{path.name}.{k}.malloc.xml"))
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
    if tracemalloc.get_traceback_limit() > 1:
        lines.append("")
        lines.append("by traceback:")
        for stat in snapshot.statistics("traceback")[:15]:
            lines.append(str(stat))
            lines += [f"    {line}" for line in stat.traceback.format()]
    snapshot.dump(str(path.with_name(f"{path.name}.{k}.snap")))
    path.write_text("\n".join(lines) + "\n")
    path.with_name(f"{path.name}.{k}.done").touch()


if __name__ == "__main__":
    prof_out = os.environ.get("GAMEVM_BENCH_PROFILE")
    mem_out = os.environ.get("GAMEVM_BENCH_TRACEMALLOC")
    profiler = cProfile.Profile() if prof_out else None
    if mem_out:
        mem_path = Path(mem_out)
        untraced = os.environ.get("GAMEVM_BENCH_UNTRACED") == "1"
        if not untraced:
            tracemalloc.start(int(os.environ.get("GAMEVM_BENCH_TRACEMALLOC_FRAMES", "1")))
        counter = itertools.count()

        def on_usr1(_sig: int, _frame: FrameType | None) -> None:
            (_write_untraced if untraced else _write_memory_top)(mem_path, next(counter))

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
