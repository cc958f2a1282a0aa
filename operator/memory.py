"""Giving freed heap memory back to the system: glibc's `malloc_trim(0)`, now and then.

glibc's malloc keeps memory it got from the system once the program frees it, and gives
back only a free block at the very top of the heap. The operator frees most of what it
allocated at start-up (every GameVM listed, decoded and handled at once) and keeps the
long-lived bodies scattered over that heap, so without a trim the resident size stays at
the start-up peak (bench/README.md, memory). `malloc_trim(0)` releases the free pages
anywhere in every arena. Other C libraries (musl) have no such call: nothing is done.
"""

import asyncio
import ctypes
import ctypes.util
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger(__name__)

Trim = Callable[[], bool]
"""Release free heap memory; False when nothing could be released."""


def glibc_trim() -> Trim | None:
    """glibc's `malloc_trim(0)` as a callable, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        function = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int

    def trim() -> bool:
        return bool(function(0))

    return trim


def resident_bytes() -> int | None:
    """This process's resident set size (Linux), None elsewhere."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return None
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


async def trim_periodically(
    trim: Trim,
    interval: float,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Trim every `interval` seconds until cancelled (the first one after `interval`:
    by then the start-up burst is over).

    The trim runs in a thread: it walks every arena and can take milliseconds on a large
    heap, which the event loop need not wait for (ctypes releases the GIL).
    """
    while True:
        await sleep(interval)
        before = resident_bytes()
        started = time.monotonic()
        released = await asyncio.to_thread(trim)
        after = resident_bytes()
        if before is not None and after is not None:
            log.debug(
                "malloc_trim: %s, resident %.1f -> %.1f MiB in %.1f ms",
                "released" if released else "nothing to release",
                before / 2**20,
                after / 2**20,
                (time.monotonic() - started) * 1000,
            )


def start_trimming(interval: float) -> "asyncio.Task[None] | None":
    """The periodic trim as a task of the running loop (cancel it to stop); None when
    `interval` is 0 or the C library cannot trim."""
    trim = glibc_trim() if interval > 0 else None
    if trim is None:
        return None
    return asyncio.create_task(trim_periodically(trim, interval), name="malloc-trim")
