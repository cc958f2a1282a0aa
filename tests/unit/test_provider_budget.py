"""The provider budget: shared offers, one list per interval for all VMs, fair paced creates,
and a 429 that slows every caller (gamevm.providers.budget, httpclient.TokenBucket)."""

import asyncio
import time
from collections import Counter
from dataclasses import replace

import pytest

from gamevm.models import PRESET_RESOURCES, CloudProvider, GpuTier, VMPreset
from gamevm.providers.base import (
    CreateSpec,
    ErrorReason,
    Instance,
    InstanceState,
    Offer,
    OfferRequest,
    ProviderError,
)
from gamevm.providers.budget import BudgetedProvider, BudgetSettings, FairTurns
from gamevm.providers.httpclient import TokenBucket
from gamevm.providers.priority import Priority, current_priority


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


OFFER = Offer(
    provider=CloudProvider.TENSORDOCK,
    region="us-central",
    placement_id="node-1",
    location_label="Dallas",
    latitude=32.8,
    longitude=-96.8,
    price_per_hour=0.2,
    vcpu=2,
    ram_gb=4,
    gpu_tier=GpuTier.NONE,
)
REQUEST = OfferRequest(preset=VMPreset.RETRO, resources=PRESET_RESOURCES[VMPreset.RETRO])


class CountingProvider:
    """A provider whose list carries state but no IP (like TensorDock's GET /instances)."""

    def __init__(self, *, listable: bool = True) -> None:
        self.calls: Counter[str] = Counter()
        self.instances: dict[str, Instance] = {}
        self.listable = listable
        self.priorities: dict[str, set[int]] = {}
        self.fail_create: ProviderError | None = None
        self.gate: asyncio.Event | None = None

    def _count(self, what: str) -> None:
        self.calls[what] += 1
        self.priorities.setdefault(what, set()).add(current_priority())

    @property
    def name(self) -> CloudProvider:
        return CloudProvider.TENSORDOCK

    async def offers(self, request: OfferRequest) -> list[Offer]:
        self._count("offers")
        await asyncio.sleep(0.01)
        return [OFFER]

    async def find(self, name: str) -> Instance | None:
        self._count("find")
        return next((i for i in self.instances.values() if i.name == name), None)

    async def create(self, spec: CreateSpec) -> Instance:
        self._count("create")
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_create is not None:
            raise self.fail_create
        instance = Instance(
            instance_id=f"id-{spec.name}",
            name=spec.name,
            state=InstanceState.PENDING,
            ip_address=None,
        )
        self.instances[instance.instance_id] = instance
        return instance

    async def observe(self, instance_id: str, *, address: bool = True) -> Instance | None:
        self._count("observe")
        instance = self.instances.get(instance_id)
        if instance is not None and instance.state is InstanceState.RUNNING:
            return replace(instance, ip_address=f"10.0.0.{len(instance_id)}")
        return instance

    async def list_instances(self) -> list[Instance] | None:
        self._count("list")
        if not self.listable:
            return None
        await asyncio.sleep(0.01)
        return [replace(i, ip_address=None) for i in self.instances.values()]

    async def start(self, instance_id: str) -> None:
        self._count("start")

    async def stop(self, instance_id: str) -> None:
        self._count("stop")
        self.instances[instance_id] = replace(
            self.instances[instance_id], state=InstanceState.STOPPED
        )

    async def delete(self, instance_id: str) -> None:
        self._count("delete")
        self.instances.pop(instance_id, None)

    async def aclose(self) -> None:
        return None

    def run_all(self) -> None:
        for key, instance in self.instances.items():
            self.instances[key] = replace(instance, state=InstanceState.RUNNING)


def spec(name: str, namespace: str = "default") -> CreateSpec:
    return CreateSpec(
        name=name,
        preset=VMPreset.RETRO,
        offer=OFFER,
        ssh_public_key="ssh-ed25519 AAAA test",
        tags={"gamevm.dev/namespace": namespace},
    )


def budgeted(inner: CountingProvider, clock: Clock, **settings: float) -> BudgetedProvider:
    values = {"list_interval": 10.0, "offers_interval": 30.0, "create_concurrency": 4}
    values.update(settings)
    return BudgetedProvider(
        inner,
        BudgetSettings(
            list_interval=values["list_interval"],
            offers_interval=values["offers_interval"],
            create_concurrency=int(values["create_concurrency"]),
        ),
        clock=clock,
    )


async def test_n_vms_placed_list_offers_once_per_interval() -> None:
    inner, clock = CountingProvider(), Clock()
    budget = budgeted(inner, clock)
    results = await asyncio.gather(*(budget.offers(REQUEST) for _ in range(200)))
    assert all(r == [OFFER] for r in results)
    assert inner.calls["offers"] == 1
    clock.now += 29
    await budget.offers(REQUEST)
    assert inner.calls["offers"] == 1
    clock.now += 2
    await asyncio.gather(*(budget.offers(REQUEST) for _ in range(50)))
    assert inner.calls["offers"] == 2


async def test_observing_n_vms_is_one_list_call() -> None:
    inner, clock = CountingProvider(), Clock()
    budget = budgeted(inner, clock)
    created = await asyncio.gather(*(budget.create(spec(f"vm-{i}")) for i in range(100)))
    inner.calls.clear()
    clock.now += 11
    observed = await asyncio.gather(*(budget.observe(c.instance_id) for c in created))
    assert [o.state if o else None for o in observed] == [InstanceState.PENDING] * 100
    assert inner.calls == Counter({"list": 1})
    # Everything runs: each VM needs its IP once (the list has none), then never again.
    inner.run_all()
    clock.now += 11
    observed = await asyncio.gather(*(budget.observe(c.instance_id) for c in created))
    assert all(o is not None and o.ip_address for o in observed)
    assert inner.calls == Counter({"list": 2, "observe": 100})
    for _ in range(5):
        clock.now += 11
        await asyncio.gather(*(budget.observe(c.instance_id) for c in created))
    assert inner.calls == Counter({"list": 7, "observe": 100})
    assert inner.priorities["list"] == {Priority.OBSERVE}


async def test_seeded_running_vms_need_no_per_instance_look() -> None:
    inner, clock = CountingProvider(), Clock()
    budget = budgeted(inner, clock)
    for i in range(20):
        inner.instances[f"id-{i}"] = Instance(f"id-{i}", f"vm-{i}", InstanceState.RUNNING)
        budget.seed(Instance(f"id-{i}", f"vm-{i}", InstanceState.RUNNING, ip_address="10.1.1.1"))
    observed = await asyncio.gather(*(budget.observe(f"id-{i}") for i in range(20)))
    assert all(o is not None and o.ip_address == "10.1.1.1" for o in observed)
    assert inner.calls == Counter({"list": 1})


async def test_instance_missing_from_a_later_list_is_confirmed_before_gone() -> None:
    inner, clock = CountingProvider(), Clock()
    budget = budgeted(inner, clock)
    created = await budget.create(spec("vm-a"))
    # Just created, list taken before: the created instance, no extra call.
    assert await budget.observe(created.instance_id) is not None
    del inner.instances[created.instance_id]
    clock.now += 11
    assert await budget.observe(created.instance_id) is None
    assert inner.calls["observe"] == 1


async def test_create_finds_by_name_in_the_shared_list_and_adopts() -> None:
    inner, clock = CountingProvider(), Clock()
    budget = budgeted(inner, clock)
    inner.instances["id-vm-a"] = Instance("id-vm-a", "vm-a", InstanceState.PENDING)
    adopted = await budget.create(spec("vm-a"))
    assert adopted.instance_id == "id-vm-a"
    assert inner.calls["create"] == 0
    # A second create of a name this process created, before any list shows it: adopted.
    first = await budget.create(spec("vm-b"))
    again = await budget.create(spec("vm-b"))
    assert again.instance_id == first.instance_id
    assert inner.calls["create"] == 1
    assert inner.calls["find"] == 0
    assert inner.priorities["create"] == {Priority.CREATE}


async def test_ambiguous_create_failure_forces_a_fresh_list_before_the_retry() -> None:
    inner, clock = CountingProvider(), Clock()
    budget = budgeted(inner, clock)
    inner.fail_create = ProviderError(ErrorReason.TIMEOUT, "timeout", retryable=True)
    with pytest.raises(ProviderError):
        await budget.create(spec("vm-a"))
    lists = inner.calls["list"]
    clock.now += 0.5  # well within the list interval: only the failure forces a new list
    # The server did create it after all.
    inner.fail_create = None
    inner.instances["id-vm-a"] = Instance("id-vm-a", "vm-a", InstanceState.PENDING)
    adopted = await budget.create(spec("vm-a"))
    assert adopted.instance_id == "id-vm-a"
    assert inner.calls["list"] == lists + 1
    assert inner.calls["create"] == 1


async def test_unlistable_provider_observes_per_instance() -> None:
    inner, clock = CountingProvider(listable=False), Clock()
    budget = budgeted(inner, clock)
    created = await budget.create(spec("vm-a"))
    inner.calls.clear()
    await budget.observe(created.instance_id)
    await budget.observe(created.instance_id)
    assert inner.calls == Counter({"observe": 2})


async def test_stop_is_not_answered_by_an_older_list() -> None:
    inner, clock = CountingProvider(), Clock()
    budget = budgeted(inner, clock)
    created = await budget.create(spec("vm-a"))
    inner.run_all()
    clock.now += 11
    assert (await budget.observe(created.instance_id)).state is InstanceState.RUNNING  # type: ignore[union-attr]
    await budget.stop(created.instance_id)
    observed = await budget.observe(created.instance_id)
    assert observed is not None
    assert observed.state is InstanceState.STOPPED


async def test_fair_turns_round_robin_across_namespaces() -> None:
    turns = FairTurns(1)
    order: list[str] = []
    await turns.turn("busy")

    async def one(key: str, label: str) -> None:
        await turns.turn(key)
        order.append(label)
        turns.done()

    tasks = [asyncio.create_task(one("busy", f"busy-{i}")) for i in range(5)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(one("small", "small-0")))
    await asyncio.sleep(0)
    turns.done()
    await asyncio.gather(*tasks)
    assert order.index("small-0") <= 1, order


async def test_creates_queue_at_most_concurrency_in_flight() -> None:
    inner, clock = CountingProvider(), Clock()
    budget = budgeted(inner, clock, create_concurrency=2)
    inner.gate = asyncio.Event()
    tasks = [asyncio.create_task(budget.create(spec(f"vm-{i}"))) for i in range(10)]
    await asyncio.sleep(0.05)
    assert inner.calls["create"] == 2
    assert budget.creates_waiting == 8
    inner.gate.set()
    await asyncio.gather(*tasks)
    assert inner.calls["create"] == 10


async def test_bucket_serves_observation_before_queued_creates() -> None:
    bucket = TokenBucket(6000)  # 100/s, burst 120
    bucket._tokens = 0
    served: list[str] = []

    async def take(label: str, priority: Priority) -> None:
        await bucket.acquire(priority)
        served.append(label)

    creates = [asyncio.create_task(take(f"create-{i}", Priority.CREATE)) for i in range(5)]
    await asyncio.sleep(0)
    observe = asyncio.create_task(take("list", Priority.OBSERVE))
    await asyncio.gather(*creates, observe)
    assert served[0] == "list", served


async def test_a_429_slows_every_caller() -> None:
    bucket = TokenBucket(6000)
    await bucket.acquire()
    bucket.slow_down(0.3)
    assert bucket.rate == pytest.approx(bucket.nominal_rate / 2)
    started = time.monotonic()
    # Callers that had nothing to do with the 429 wait too.
    await asyncio.gather(*(bucket.acquire(Priority.OBSERVE) for _ in range(3)))
    assert time.monotonic() - started >= 0.29
    assert bucket.slowdowns == 1


def test_bucket_stays_under_its_limit_in_any_minute() -> None:
    clock = [0.0]
    bucket = TokenBucket(100, clock=lambda: clock[0])
    granted: list[float] = []
    for _ in range(18000):  # 3 minutes in 10 ms steps
        while bucket.delay_for_next() == 0:
            bucket._take()
            granted.append(clock[0])
        clock[0] += 0.01
    worst = max(sum(1 for t in granted if s <= t < s + 60) for s in granted)
    assert worst <= 100
    assert len(granted) >= 290


def test_status_keeps_what_a_restarted_operator_needs_to_reach_wolf() -> None:
    from gamevm.models.enums import VMStatus
    from gamevm.models.gamevm import GameVMStatus
    from gamevm.services.reconcile import Reconciler, known_instance

    status = GameVMStatus(phase=VMStatus.RUNNING, provider_instance_id="id-1", ip_address="1.2.3.4")
    Reconciler._apply_instance(
        status,
        Instance("id-1", "vm", InstanceState.RUNNING, ip_address="1.2.3.4", ports={47989: 40001}),
    )
    status.phase = VMStatus.RUNNING
    known = known_instance(status)
    assert known is not None
    assert known.wolf_http_port == 40001
    assert known.ip_address == "1.2.3.4"


async def test_lists_run_sooner_only_while_some_vm_waits_for_a_change() -> None:
    inner, clock = CountingProvider(), Clock()
    budget = BudgetedProvider(
        inner, BudgetSettings(list_interval=10.0, pending_list_interval=1.0), clock=clock
    )
    created = await budget.create(spec("vm-a"))
    await budget.observe(created.instance_id)  # pending: the next list may come sooner
    lists = inner.calls["list"]
    clock.now += 1.5
    await budget.observe(created.instance_id)
    assert inner.calls["list"] == lists + 1
    inner.run_all()
    clock.now += 1.5
    assert (await budget.observe(created.instance_id)).state is InstanceState.RUNNING  # type: ignore[union-attr]
    clock.now += 1.5
    await budget.observe(created.instance_id)  # all running: back to the long interval
    assert inner.calls["list"] == lists + 2


def test_faster_lists_stay_within_a_share_of_the_limit() -> None:
    at_100 = BudgetSettings.for_limit(
        100, list_interval=10.0, offers_interval=30.0, create_concurrency=4
    )
    assert at_100.pending_list_interval == 3.0  # 20 % of 100/min while nothing waits
    assert at_100.busy_list_interval == 20.0  # 3 % while creates wait for the limit
    unlimited = BudgetSettings.for_limit(
        1_000_000, list_interval=10.0, offers_interval=30.0, create_concurrency=4
    )
    assert unlimited.pending_list_interval == unlimited.busy_list_interval == 0.5


async def test_lists_slow_down_while_creates_wait_for_the_limit() -> None:
    inner, clock = CountingProvider(), Clock()
    settings = BudgetSettings(list_interval=10.0, pending_list_interval=1.0, busy_list_interval=5.0)
    budget = BudgetedProvider(inner, settings, clock=clock)
    first = await budget.create(spec("vm-a"))
    inner.gate = asyncio.Event()
    queued = asyncio.ensure_future(budget.create(spec("vm-b")))
    await asyncio.sleep(0.01)
    await budget.observe(first.instance_id)  # pending, but a create is under way
    lists = inner.calls["list"]
    clock.now += 1.5
    await budget.observe(first.instance_id)
    assert inner.calls["list"] == lists  # the busy interval (5 s), not the fast one
    clock.now += 4
    await budget.observe(first.instance_id)
    assert inner.calls["list"] == lists + 1
    inner.gate.set()
    await queued
    clock.now += 1.5
    await budget.observe(first.instance_id)  # creates done: the fast interval again
    assert inner.calls["list"] == lists + 2


async def test_a_caller_with_the_address_needs_no_per_instance_look() -> None:
    inner, clock = CountingProvider(), Clock()
    budget = budgeted(inner, clock)
    created = await asyncio.gather(*(budget.create(spec(f"vm-{i}")) for i in range(20)))
    inner.run_all()
    inner.calls.clear()
    clock.now += 11
    observed = await asyncio.gather(
        *(budget.observe(c.instance_id, address=False) for c in created)
    )
    assert all(o is not None and o.state is InstanceState.RUNNING for o in observed)
    assert all(o is not None and o.ip_address is None for o in observed)
    assert inner.calls == Counter({"list": 1})
    # Asked for the address (no usable report): one look each, then remembered.
    await asyncio.gather(*(budget.observe(c.instance_id) for c in created))
    await asyncio.gather(*(budget.observe(c.instance_id, address=False) for c in created))
    assert inner.calls == Counter({"list": 1, "observe": 20})


async def test_a_turn_taken_before_the_step_is_the_one_its_create_uses() -> None:
    """`create_turn`: the create sent inside does not queue again (one slot: it would wait
    for itself), an unused turn goes back, and waiting VMs count as queued creates."""
    inner, clock = CountingProvider(), Clock()
    budget = budgeted(inner, clock, create_concurrency=1)
    async with asyncio.timeout(2):
        async with budget.create_turn("team-a"):
            await budget.create(spec("vm-a", "team-a"))
        async with budget.create_turn("team-a"):
            pass  # the step found nothing to create
        # Both turns were given back: a plain create gets the only slot.
        await budget.create(spec("vm-b", "team-a"))
    assert inner.calls["create"] == 2

    inner.gate = asyncio.Event()
    holder = asyncio.create_task(budget.create(spec("vm-c")))
    await asyncio.sleep(0.02)
    waiting = [asyncio.create_task(_create_in_turn(budget, f"vm-w{i}")) for i in range(3)]
    await asyncio.sleep(0.02)
    assert budget.creates_waiting == 3
    inner.gate.set()
    await asyncio.gather(holder, *waiting)
    assert inner.calls["create"] == 6


async def _create_in_turn(budget: BudgetedProvider, name: str) -> None:
    async with budget.create_turn("default"):
        await budget.create(spec(name))


async def test_offers_are_reused_longer_while_creates_wait_for_a_turn() -> None:
    """Each VM re-reads the offers at its create turn: while creates queue, a fresh listing
    every `offers_interval` would spend a create's requests on each one."""
    inner, clock = CountingProvider(), Clock()
    budget = budgeted(inner, clock, create_concurrency=1)
    await budget.offers(REQUEST)
    inner.gate = asyncio.Event()
    queued = [asyncio.create_task(budget.create(spec(f"vm-{i}"))) for i in range(3)]
    await asyncio.sleep(0.02)
    assert budget.creates_waiting == 2
    clock.now += 300  # ten offers intervals
    await budget.offers(REQUEST)
    assert inner.calls["offers"] == 1
    inner.gate.set()
    await asyncio.gather(*queued)
    await budget.offers(REQUEST)  # nothing waits any more: the interval is 30 s again
    assert inner.calls["offers"] == 2
