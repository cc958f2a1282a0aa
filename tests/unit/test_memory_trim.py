"""gamevm.memory: glibc's malloc_trim gives freed heap back, and the operator calls it
periodically (bench/README.md, memory)."""

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest

from gamevm.memory import glibc_trim, resident_bytes, start_trimming, trim_periodically

# A fresh interpreter: fills the C heap with 1 KiB blocks (above pymalloc's 512 B limit,
# so glibc's malloc serves them), frees all but every 256th (they pin the heap, as the
# operator's long-lived bodies do, so glibc's own top-of-heap trim cannot release it),
# then reports the resident size before and after gamevm.memory's trim.
FRAGMENTED_HEAP = textwrap.dedent(
    """
    import json
    from gamevm.memory import glibc_trim, resident_bytes

    blocks = [bytes(1024) for _ in range(200_000)]
    kept = blocks[::256]
    del blocks
    before = resident_bytes()
    trim = glibc_trim()
    released = trim() if trim is not None else None
    print(json.dumps({"before": before, "after": resident_bytes(), "released": released,
                      "kept": len(kept)}))
    """
)


def test_trim_returns_a_fragmented_heap_to_the_system() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTED_HEAP],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    figures = json.loads(out)
    assert figures["released"] is True
    # ~200 MiB allocated, under 1 MiB still in use: well over 100 MiB goes back.
    assert figures["before"] - figures["after"] > 100 * 2**20, figures


def test_glibc_trim_is_found_here_and_resident_size_is_read() -> None:
    # The CI image and this machine run glibc (the operator image is Debian-based).
    assert glibc_trim() is not None
    resident = resident_bytes()
    assert resident is not None
    assert resident > 0


async def test_trims_every_interval_off_the_event_loop() -> None:
    slept: list[float] = []
    threads: list[bool] = []
    loop_thread = asyncio.get_running_loop()

    def trim() -> bool:
        # Called from a worker thread: no running loop there.
        try:
            threads.append(asyncio.get_running_loop() is loop_thread)
        except RuntimeError:
            threads.append(False)
        return True

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) > 3:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await trim_periodically(trim, 42.0, sleep=sleep)
    assert slept == [42.0] * 4
    assert threads == [False, False, False]  # three trims, none on the loop's thread


async def test_an_interval_of_zero_starts_no_trimming() -> None:
    assert start_trimming(0) is None
    task = start_trimming(60)
    assert task is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
