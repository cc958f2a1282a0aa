"""The write queue: the latest pending change per key, never raising, never waiting.

Handlers hand changes over with ``ChangeQueue.put``; the writer takes them in batches.
A newer change of the same key replaces the pending one (only the newest state needs to
be written), except that a VM's termination is final and beats any later live update.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from gamevm.models.documents import EmulatorConfigDocument, VMDocument

Key = tuple[str, str]


class ChangeKind(StrEnum):
    """What a change does to its document."""

    VM = "vm"
    VM_TERMINATED = "vm_terminated"
    VM_TERMINATED_ID = "vm_terminated_id"
    CONFIG = "config"
    CONFIG_DELETED = "config_deleted"


@dataclass
class Change:
    """One change, stamped with its delivery order (see ordering.py)."""

    kind: ChangeKind
    key: Key
    seq: int
    document: VMDocument | EmulatorConfigDocument | None
    first_enqueued: float
    enqueued: float = field(default_factory=time.monotonic)
    when: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def final(self) -> bool:
        """A VM's termination beats any live update of the same vm_id."""
        return self.kind in (ChangeKind.VM_TERMINATED, ChangeKind.VM_TERMINATED_ID)

    def supersedes(self, other: "Change") -> bool:
        if self.final != other.final:
            return self.final
        return self.seq >= other.seq


class ChangeQueue:
    """Pending changes by key, plus those being written (in flight)."""

    def __init__(self) -> None:
        self.pending: dict[Key, Change] = {}
        self.inflight: dict[Key, Change] = {}
        self._wake = asyncio.Event()

    def put(self, change: Change) -> None:
        current = self.pending.get(change.key)
        if current is None:
            self.pending[change.key] = change
        elif change.supersedes(current):
            change.first_enqueued = current.first_enqueued  # lag counts from the first
            self.pending[change.key] = change
        self._wake.set()

    async def wait_for_work(self) -> None:
        """Return once something is pending."""
        while not self.pending:
            self._wake.clear()
            await self._wake.wait()

    def take(self, *, probe: bool) -> list[Change]:
        """Move pending changes in flight: all of them, or one to probe a server that was away."""
        if probe:
            key = next(iter(self.pending))
            batch = {key: self.pending.pop(key)}
        else:
            batch, self.pending = self.pending, {}
        self.inflight.update(batch)
        return list(batch.values())

    def settle(self, batch: list[Change], retry: list[Change]) -> None:
        """The batch is done; ``retry`` goes back unless a newer change of its key came in."""
        for change in batch:
            self.inflight.pop(change.key, None)
        for change in retry:
            newer = self.pending.get(change.key)
            if newer is None or not newer.supersedes(change):
                self.pending[change.key] = change
            else:
                newer.first_enqueued = min(newer.first_enqueued, change.first_enqueued)

    @property
    def idle(self) -> bool:
        return not self.pending and not self.inflight

    def __len__(self) -> int:
        return len(self.pending) + len(self.inflight)

    def oldest(self) -> float | None:
        """When (time.monotonic()) the oldest unwritten change was first enqueued."""
        waiting = [*self.pending.values(), *self.inflight.values()]
        return min((change.first_enqueued for change in waiting), default=None)


class KeyLocks:
    """One lock per document key, held while writing it: the writer and the resync never
    write the same document at once. Servers that do not isolate two conditional updates
    of one document (FerretDB 1.x, docs/mongodb-compat.md) could otherwise apply both."""

    def __init__(self) -> None:
        self._locks: dict[Key, asyncio.Lock] = {}
        self._users: dict[Key, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Key) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
