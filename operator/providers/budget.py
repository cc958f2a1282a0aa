"""The provider budget: every VM of one provider shares its listings, its observation and
its request limit.

`BudgetedProvider` wraps one provider adapter (any: it relies only on the Protocol):

- **offers** are listed once per `offers_interval` per request shape and shared by every VM
  being placed (concurrent callers wait for the one call in flight);
- **observation**: one `list_instances` call per interval serves `observe` and `find`
  for every VM of the provider: `list_interval` while all are steady, faster while some
  VM waits for a change (`pending_list_interval`), slower while creates wait for the
  limit (`busy_list_interval`: a list is then a create less). `observe` asks the adapter
  for one instance only for what the list lacks: an instance newly listed as running
  whose IP is not yet known (once per start, and only when the caller has no address of
  its own: `observe(..., address=False)` after the VM reported where it is), a state the
  list does not carry (CloudyPad), an instance missing from a list taken after it was
  created (a list may lag: confirmed before it is reported gone), or a list older than
  our last start/stop/delete of that instance;
- **creates** queue for a turn, round-robin across namespaces (one namespace's thousand
  VMs do not hold up another's one), at most `create_concurrency` in flight, and their
  requests take the shared limiter's lowest priority (`gamevm.providers.priority`), so
  the observation list is never queued behind a burst of creates. The pace itself is the
  adapter's limiter (TensorDock: `TokenBucket` at 100 requests/min), which a 429 slows for
  every caller. A caller may wait for its turn before it builds the create
  (`create_turn`), and offers are reused longer while creates wait (`BUSY_OFFERS_INTERVAL`).

A name absent from a list is only trusted when the list was taken after this process's
last ambiguous create of that name; names this process created are remembered, so a
create retried before the next list adopts instead of creating twice.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TypeVar, cast

from gamevm.models.enums import CloudProvider
from gamevm.providers.base import (
    CreateSpec,
    Instance,
    InstanceState,
    Offer,
    OfferRequest,
    Provider,
    ProviderError,
)
from gamevm.providers.priority import Priority, request_priority

log = logging.getLogger(__name__)

NAMESPACE_TAG = "gamevm.dev/namespace"
PASSING_STATES = frozenset({InstanceState.PENDING, InstanceState.STARTING, InstanceState.STOPPING})
BUSY_OFFERS_INTERVAL = 600.0
"""Seconds listed offers are reused while creates wait for a turn."""
MAX_BUSY_INTERVAL = 30.0
"""Seconds a VM waiting to be seen running may wait for a list while creates go on."""
T = TypeVar("T")


@dataclass(frozen=True)
class BudgetSettings:
    """How often the shared calls may run (seconds) and how many creates go at once."""

    list_interval: float = 10.0
    """The list interval while every instance is steady (running, stopped)."""
    offers_interval: float = 30.0
    create_concurrency: int = 16
    pending_list_interval: float = 10.0
    """The list interval while some VM waits for its instance to change state (created,
    starting, stopping) and no create waits for the limit: shorter where it leaves room."""
    busy_list_interval: float = 10.0
    """The same while creates are queued or in flight: each list is then a create less,
    so lists run at a small share of the limit (creates still finish at full pace, and
    the fast interval takes over for the last ones)."""

    @classmethod
    def for_limit(
        cls,
        requests_per_minute: float,
        *,
        list_interval: float,
        offers_interval: float,
        create_concurrency: int,
        list_share: float = 0.2,
        busy_list_share: float = 0.03,
    ) -> "BudgetSettings":
        """Settings whose lists while VMs change state use at most `list_share` of the
        provider's requests per minute (`busy_list_share` while creates wait for it), never
        run more than twice a second, and never wait longer than `MAX_BUSY_INTERVAL`."""
        pending = min(list_interval, max(0.5, 60.0 / (requests_per_minute * list_share)))
        busy = max(pending, min(MAX_BUSY_INTERVAL, 60.0 / (requests_per_minute * busy_list_share)))
        return cls(list_interval, offers_interval, create_concurrency, pending, busy)


@dataclass
class _HeldTurn:
    """A create turn taken ahead of the step that creates (`BudgetedProvider.create_turn`)."""

    budget: "BudgetedProvider"
    used: bool = False


_HELD_TURN: ContextVar[_HeldTurn | None] = ContextVar("gamevm_held_create_turn", default=None)


@dataclass(frozen=True)
class Snapshot:
    """One list of every instance, and when the list call was sent."""

    taken_at: float
    by_id: dict[str, Instance]
    by_name: dict[str, Instance]


class SingleFlight:
    """At most one call per key in flight; concurrent callers share its result."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[object]] = {}

    async def run(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        """The result of the call in flight for `key`, or of a new one."""
        running = self._running.get(key)
        if running is None:
            task: asyncio.Future[object] = asyncio.ensure_future(call())
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
            running = task
        # Shielded: one caller being cancelled (its VM deleted) must not cancel the others'.
        result = await asyncio.shield(running)
        return cast("T", result)


class FairTurns:
    """Turns handed out round-robin across keys, FIFO within a key, `slots` at a time."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        self._order: deque[str] = deque()

    @property
    def waiting(self) -> int:
        """Callers waiting for a turn."""
        return sum(len(q) for q in self._queues.values())

    async def turn(self, key: str) -> None:
        """Wait for a turn; `done()` must follow."""
        if self._free > 0 and not self._order:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if key not in self._queues:
            self._queues[key] = deque()
            self._order.append(key)
        self._queues[key].append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.done()  # granted as the caller gave up: pass the turn on
            else:
                self._drop(key, future)
            raise

    def done(self) -> None:
        """Give the turn back: the next key in round-robin order gets it."""
        while self._order:
            key = self._order.popleft()
            queue = self._queues[key]
            future = queue.popleft()
            if queue:
                self._order.append(key)
            else:
                del self._queues[key]
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    def _drop(self, key: str, future: asyncio.Future[None]) -> None:
        queue = self._queues.get(key)
        if queue is None or future not in queue:
            return
        queue.remove(future)
        if not queue:
            del self._queues[key]
            self._order.remove(key)


@dataclass
class _Memory:
    details: dict[str, Instance] = field(default_factory=dict)
    """Per instance id: the last full observation (IP, ports) while it stays listed running."""
    created: dict[str, tuple[float, Instance]] = field(default_factory=dict)
    """Per name: instances this process created and no list has shown yet, and when the
    create returned."""
    created_ids: dict[str, tuple[float, Instance]] = field(default_factory=dict)
    """The same, per instance id."""
    ambiguous: dict[str, float] = field(default_factory=dict)
    """Per name: when a create failed in a way that may have created it anyway."""
    acted: dict[str, float] = field(default_factory=dict)
    """Per instance id: when we last started, stopped or deleted it."""


class BudgetedProvider:
    """A Provider whose calls share one budget across all VMs (see the module docstring)."""

    def __init__(
        self,
        inner: Provider,
        settings: BudgetSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._settings = settings or BudgetSettings()
        self._clock = clock
        self._flights = SingleFlight()
        self._offers: dict[OfferRequest, tuple[float, list[Offer]]] = {}
        self._snapshot: Snapshot | None = None
        self._changing = False
        """A VM saw its instance in a passing state since the last list: list sooner."""
        self._listable = True
        self._memory = _Memory()
        self._turns = FairTurns(max(1, self._settings.create_concurrency))
        self._creating = 0
        """Creates queued for a turn or in flight."""

    @property
    def name(self) -> CloudProvider:
        """The wrapped provider's name."""
        return self._inner.name

    @property
    def creates_waiting(self) -> int:
        """Creates queued for a turn."""
        return self._turns.waiting

    # -- offers ----------------------------------------------------------------------------

    async def offers(self, request: OfferRequest) -> list[Offer]:
        """The provider's offers, listed at most once per `offers_interval` per request, or
        per `BUSY_OFFERS_INTERVAL` while creates wait for a turn: a listing then costs the
        requests of a create (each VM's create re-reads the offers at its turn; the offer
        is still checked against its caps, and a placement gone fails over)."""
        cached = self._offers.get(request)
        max_age = self._settings.offers_interval
        if self._turns.waiting:
            max_age = max(max_age, BUSY_OFFERS_INTERVAL)
        if cached is not None and self._clock() - cached[0] < max_age:
            return cached[1]
        return await self._flights.run(("offers", request), lambda: self._list_offers(request))

    async def _list_offers(self, request: OfferRequest) -> list[Offer]:
        started = self._clock()
        with request_priority(Priority.ACT):
            offers = await self._inner.offers(request)
        self._offers[request] = (started, offers)
        return offers

    # -- observation -----------------------------------------------------------------------

    def seed(self, instance: Instance) -> None:
        """Known details of a running instance (from status, after a restart): while the
        list keeps showing it running, its IP needs no fresh per-instance look."""
        if instance.ip_address and instance.instance_id not in self._memory.details:
            self._memory.details[instance.instance_id] = instance

    async def list_instances(self) -> list[Instance] | None:
        """The shared list (at most one call per `list_interval`)."""
        snapshot = await self._fresh_snapshot()
        return None if snapshot is None else list(snapshot.by_id.values())

    async def _fresh_snapshot(self, newer_than: float | None = None) -> Snapshot | None:
        if not self._listable:
            return None
        current = self._snapshot
        settings = self._settings
        max_age = settings.list_interval
        if self._changing:
            busy = self._creating > 0
            max_age = settings.busy_list_interval if busy else settings.pending_list_interval
        if (
            current is not None
            and (newer_than is None or current.taken_at > newer_than)
            and self._clock() - current.taken_at < max_age
        ):
            return current
        snapshot = await self._flights.run("list", self._take_snapshot)
        if newer_than is not None and snapshot is not None and snapshot.taken_at <= newer_than:
            # The shared call was already under way before `newer_than`: take another.
            snapshot = await self._flights.run("list", self._take_snapshot)
        return snapshot

    async def _take_snapshot(self) -> Snapshot | None:
        started = self._clock()
        self._changing = False
        with request_priority(Priority.OBSERVE):
            listed = await self._inner.list_instances()
        if listed is None:
            self._listable = False
            return None
        snapshot = Snapshot(
            taken_at=started,
            by_id={i.instance_id: i for i in listed},
            by_name={i.name: i for i in listed if i.name},
        )
        if self._snapshot is None or snapshot.taken_at >= self._snapshot.taken_at:
            self._snapshot = snapshot
        live = snapshot.by_id
        memory = self._memory
        # Once a list shows them, our own creates and actions need no remembering.
        memory.created = {
            k: v for k, v in memory.created.items() if v[0] >= started or k not in snapshot.by_name
        }
        memory.created_ids = {v[1].instance_id: v for v in memory.created.values()}
        memory.acted = {k: v for k, v in memory.acted.items() if v >= started}
        # Details of instances no longer listed running are dropped: the next start may
        # bring a new IP.
        self._memory.details = {
            k: v
            for k, v in self._memory.details.items()
            if k in live and live[k].state is InstanceState.RUNNING
        }
        return snapshot

    async def observe(self, instance_id: str, *, address: bool = True) -> Instance | None:
        """From the shared list; one per-instance look only for what the list lacks (its
        IP only when the caller asks for it: `address`)."""
        instance = await self._observe(instance_id, address)
        if instance is not None and instance.state in PASSING_STATES:
            self._changing = True
        return instance

    async def _observe(self, instance_id: str, address: bool) -> Instance | None:
        snapshot = await self._fresh_snapshot()
        if snapshot is None or snapshot.taken_at <= self._memory.acted.get(instance_id, -1.0):
            return await self._observe_one(instance_id)
        listed = snapshot.by_id.get(instance_id)
        if listed is None:
            created = self._created_by_id(instance_id)
            if created is not None and created[0] >= snapshot.taken_at:
                # Created after the list was sent, so not in it yet: the create's answer
                # (completed if it says running), and the next list is wanted soon.
                self._changing = True
                return await self._complete(created[1], address)
            # Missing from a list taken after its creation: confirm before calling it gone.
            return await self._observe_one(instance_id)
        return await self._complete(listed, address)

    async def _complete(self, listed: Instance, address: bool = True) -> Instance | None:
        if listed.state is InstanceState.UNKNOWN:
            return await self._observe_one(listed.instance_id)
        if listed.state is not InstanceState.RUNNING or listed.ip_address:
            return listed
        detail = self._memory.details.get(listed.instance_id)
        if detail is None and not address:
            # The caller has the address from the VM itself: the list says enough.
            return listed
        if detail is None:
            looked = await self._observe_one(listed.instance_id)
            if looked is None or looked.state is not InstanceState.RUNNING:
                return looked
            detail = looked
        return replace(detail, state=listed.state)

    async def _observe_one(self, instance_id: str) -> Instance | None:
        return await self._flights.run(("observe", instance_id), lambda: self._look(instance_id))

    async def _look(self, instance_id: str) -> Instance | None:
        with request_priority(Priority.OBSERVE):
            instance = await self._inner.observe(instance_id)
        if instance is not None and instance.state is InstanceState.RUNNING:
            if instance.ip_address:
                self._memory.details[instance_id] = instance
        else:
            self._memory.details.pop(instance_id, None)
        return instance

    def _created_by_id(self, instance_id: str) -> tuple[float, Instance] | None:
        return self._memory.created_ids.get(instance_id)

    async def find(self, name: str) -> Instance | None:
        """The instance named `name`, from a list newer than any ambiguous create of it."""
        created = self._memory.created.get(name)
        snapshot = await self._fresh_snapshot(newer_than=self._memory.ambiguous.get(name))
        if snapshot is None:
            with request_priority(Priority.OBSERVE):
                return await self._inner.find(name)
        listed = snapshot.by_name.get(name)
        if listed is None:
            if created is not None and created[0] >= snapshot.taken_at:
                return created[1]
            if created is not None:
                # Created by us, missing from a later list: ask the adapter (a list may lag).
                with request_priority(Priority.OBSERVE):
                    return await self._inner.find(name)
            return None
        return await self._complete(listed)

    # -- mutations -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def create_turn(self, namespace: str) -> AsyncIterator[None]:
        """Wait for a create turn, then run the block: a create the block sends (in this
        task) uses the turn instead of queueing again; unused, it goes back at the end.

        For a caller that knows its next step creates: it waits here holding nothing the
        step builds (status copies, user data, keys), where thousands of VMs may wait for
        TensorDock's 100 requests/min (bench/README.md, memory while placing).
        """
        self._creating += 1
        try:
            await self._turns.turn(namespace)
        finally:
            self._creating -= 1
        held = _HeldTurn(self)
        token = _HELD_TURN.set(held)
        try:
            yield
        finally:
            _HELD_TURN.reset(token)
            if not held.used:
                self._turns.done()

    async def create(self, spec: CreateSpec) -> Instance:
        """Queued for a fair turn (or in one taken by `create_turn`); adopts an existing
        instance of that name."""
        self._creating += 1
        try:
            return await self._create(spec)
        finally:
            self._creating -= 1

    async def _create(self, spec: CreateSpec) -> Instance:
        held = _HELD_TURN.get()
        if held is not None and held.budget is self and not held.used:
            held.used = True
        else:
            await self._turns.turn(spec.tags.get(NAMESPACE_TAG, ""))
        try:
            existing = await self.find(spec.name)
            if existing is not None:
                return existing
            listed = self._listable and spec.name not in self._memory.ambiguous
            try:
                with request_priority(Priority.CREATE):
                    instance = await self._inner.create(replace(spec, absent_checked=listed))
            except ProviderError as exc:
                if exc.retryable:
                    self._memory.ambiguous[spec.name] = self._clock()
                raise
        finally:
            self._turns.done()
        self._memory.ambiguous.pop(spec.name, None)
        entry = (self._clock(), instance)
        self._memory.created[spec.name] = entry
        self._memory.created_ids[instance.instance_id] = entry
        return instance

    async def start(self, instance_id: str) -> None:
        """Start; lists older than this no longer speak for the instance."""
        await self._act(instance_id, self._inner.start)

    async def stop(self, instance_id: str) -> None:
        """Stop; lists older than this no longer speak for the instance."""
        await self._act(instance_id, self._inner.stop)

    async def delete(self, instance_id: str) -> None:
        """Delete; lists older than this no longer speak for the instance."""
        await self._act(instance_id, self._inner.delete)
        if self._memory.created_ids.pop(instance_id, None) is not None:
            self._memory.created = {
                k: v for k, v in self._memory.created.items() if v[1].instance_id != instance_id
            }

    async def _act(self, instance_id: str, call: Callable[[str], Awaitable[None]]) -> None:
        self._memory.details.pop(instance_id, None)
        with request_priority(Priority.ACT):
            try:
                await call(instance_id)
            finally:
                self._memory.acted[instance_id] = self._clock()

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self._inner.aclose()
