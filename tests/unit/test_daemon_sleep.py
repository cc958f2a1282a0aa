"""The daemon's sleep between steps: a timer, cut short by a wake-up; and kopf's essence."""

import asyncio

import kopf

from gamevm.handlers.diffbase import NoDiffBaseStorage
from gamevm.handlers.gamevm import _sleep_until_woken


async def test_sleep_ends_after_the_delay_without_a_wake_up() -> None:
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(_sleep_until_woken(wake, 0.05), timeout=2)
    assert loop.time() - started >= 0.04


async def test_a_wake_up_ends_the_sleep_early() -> None:
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, wake.set)
    started = loop.time()
    await asyncio.wait_for(_sleep_until_woken(wake, 60), timeout=2)
    assert loop.time() - started < 5


async def test_a_timed_out_sleep_leaves_the_wake_up_unset() -> None:
    # The daemon's hold loop sleeps again after a timeout unless a real wake-up came.
    wake = asyncio.Event()
    await _sleep_until_woken(wake, 0.01)
    assert not wake.is_set()


async def test_a_cancelled_sleep_is_cancelled() -> None:
    wake = asyncio.Event()
    sleeper = asyncio.create_task(_sleep_until_woken(wake, 60))
    await asyncio.sleep(0)
    sleeper.cancel()
    await asyncio.gather(sleeper, return_exceptions=True)
    assert sleeper.cancelled()


def test_essence_is_a_copy_of_spec_and_annotations() -> None:
    raw = {
        "metadata": {"name": "vm", "annotations": {"a": "1"}},
        "spec": {"consoleType": "nes", "userLocation": {"latitude": 1.0}, "tags": [{"k": "v"}]},
        "status": {"phase": "running"},
    }
    essence = NoDiffBaseStorage().build(body=kopf.Body(raw))
    assert essence == {"spec": raw["spec"], "metadata": {"annotations": {"a": "1"}}}
    raw["spec"]["userLocation"]["latitude"] = 2.0  # type: ignore[index]
    raw["spec"]["tags"][0]["k"] = "w"  # type: ignore[index]
    assert essence["spec"]["userLocation"] == {"latitude": 1.0}
    assert essence["spec"]["tags"] == [{"k": "v"}]
