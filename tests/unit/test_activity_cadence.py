"""How often a running VM is checked for activity (a Wolf probe), and when it is not."""

from datetime import timedelta

import pytest

from gamevm.models.enums import VMStatus
from gamevm.providers.wolf import WolfStatus
from gamevm.services.power import CHECK_SPREAD, activity_check_delay
from gamevm.services.reconcile import Timings
from tests.unit.test_reconcile import T0, FakeWolf, World

INF = float("inf")


@pytest.mark.parametrize(
    ("idle_left", "expected"),
    [
        (INF, 300.0),  # no idle deadline (runStrategy Always): the longest gap
        (3600.0, 300.0),  # far from it: capped
        (400.0, 200.0),  # half the time left
        (61.0, 30.5),
        (59.0, 30.0),  # near it: never closer than the interval
        (5.0, 30.0),  # (the caller brings the step forward to the deadline itself)
        (0.0, 30.0),
    ],
)
def test_half_the_time_left_between_the_interval_and_the_cap(
    idle_left: float, expected: float
) -> None:
    assert activity_check_delay(idle_left, 30.0, 300.0) == expected


def test_a_cap_below_the_interval_is_the_interval() -> None:
    assert activity_check_delay(INF, 30.0, 10.0) == 30.0


def test_each_vm_has_its_own_longest_gap_so_a_restart_burst_spreads_out() -> None:
    gaps = {activity_check_delay(INF, 30.0, 300.0, spread=s / 10) for s in range(11)}
    assert len(gaps) == 11, "VMs checked together once drift apart"
    assert min(gaps) == 300.0 * (1 - CHECK_SPREAD)
    assert max(gaps) == 300.0
    # Near the deadline the spread changes nothing: half the time left, as before.
    assert activity_check_delay(400.0, 30.0, 300.0, spread=1.0) == 200.0


class CountingWolf(FakeWolf):
    def __init__(self) -> None:
        super().__init__()
        self.probes = 0

    async def probe(self, host: str, port: int) -> WolfStatus | None:
        self.probes += 1
        return await super().probe(host, port)


async def _running() -> tuple[World, CountingWolf]:
    w = World()
    wolf = CountingWolf()
    w.wolf = wolf
    w.reconciler._wolf = wolf  # the world's probe, counted
    await w.until_running()
    return w, wolf


async def test_a_running_vm_far_from_its_deadline_is_checked_sparsely() -> None:
    w, _ = await _running()  # autoStopTimeout 900, activity just now
    w.now += timedelta(seconds=1)
    out = await w.step()
    longest = Timings().activity_max
    assert longest * (1 - CHECK_SPREAD) <= out.requeue_after <= longest


async def test_the_step_comes_at_the_idle_deadline_not_an_interval_after() -> None:
    w, wolf = await _running()
    w.now = T0 + timedelta(seconds=880)  # 20 s left, less than one interval (30 s)
    out = await w.step()
    assert w.status.phase is VMStatus.RUNNING
    assert out.requeue_after == pytest.approx(20.5, abs=0.01)
    w.now += timedelta(seconds=out.requeue_after)
    probes = wolf.probes
    await w.step()
    assert wolf.probes == probes + 1, "the deadline step probes before it decides"
    assert w.status.stop_reason == "Idle"


async def test_the_session_cap_deadline_is_kept_with_sparse_checks() -> None:
    w, _ = await _running()
    w.wolf.status = WolfStatus(busy=True, state="SUNSHINE_SERVER_BUSY")
    w.now = T0 + timedelta(hours=4, seconds=-100)  # maxSessionHours 4, 100 s left
    out = await w.step()
    assert out.requeue_after == pytest.approx(100.5, abs=1.0)


async def test_a_fresh_heartbeat_is_activity_without_a_probe() -> None:
    w, wolf = await _running()
    probes = wolf.probes
    w.now += timedelta(seconds=200)
    await w.step(heartbeat=w.now - timedelta(seconds=5))
    assert wolf.probes == probes, "no probe while the heartbeat is fresh"
    assert w.status.last_activity == w.now - timedelta(seconds=5)
    assert w.status.phase is VMStatus.RUNNING
    w.now += timedelta(seconds=200)
    await w.step(heartbeat=w.now - timedelta(seconds=Timings().activity + 1))
    assert wolf.probes == probes + 1, "a stale heartbeat: probed"


async def test_a_heartbeat_does_not_spare_the_probes_that_count_misses() -> None:
    w, wolf = await _running()
    w.wolf.status = None
    w.now += timedelta(seconds=200)
    await w.step()
    assert w.wolf_misses == 1
    probes = wolf.probes
    w.now += timedelta(seconds=5)
    await w.step(heartbeat=w.now)
    assert wolf.probes == probes + 1, "Wolf went silent: keep counting"
