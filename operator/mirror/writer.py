"""The writer: takes changes from the queue and writes them, retrying while MongoDB is away.

Changes of one key are never written concurrently (a key is either pending or in flight),
so each key's writes reach MongoDB in delivery order. While MongoDB is away the writer
keeps the changes and probes with one of them at a time, backing off with jitter.
Every write is counted (``gamevm_mirror_writes_total{collection, outcome}``).
"""

import asyncio
import logging
import time
from typing import Final

from pymongo.errors import PyMongoError

from gamevm import metrics
from gamevm.mirror.changes import Change, ChangeKind, ChangeQueue, KeyLocks
from gamevm.mirror.connection import Connection
from gamevm.mirror.errors import is_retryable
from gamevm.mirror.stats import MirrorStats
from gamevm.mirror.writes import (
    Outcome,
    delete_config,
    mark_vm_terminated,
    write_config,
    write_vm,
    write_vm_terminated,
)
from gamevm.models.documents import EmulatorConfigDocument, VMDocument

log = logging.getLogger(__name__)

MAX_CONCURRENT_WRITES: Final = 16


class Writer:
    """Drains a ChangeQueue into MongoDB."""

    def __init__(
        self, queue: ChangeQueue, connection: Connection, stats: MirrorStats, locks: KeyLocks
    ) -> None:
        self._queue = queue
        self._locks = locks
        self._connection = connection
        self._stats = stats
        self.unique = True
        """False on a server without unique indexes (see capabilities.py)."""

    async def run(self) -> None:
        attempt = 0
        limit = asyncio.Semaphore(MAX_CONCURRENT_WRITES)

        async def apply(change: Change) -> bool:
            async with limit:
                return await self._apply(change)

        while True:
            await self._queue.wait_for_work()
            # After a failure, probe with one change instead of timing out a whole batch.
            batch = self._queue.take(probe=attempt > 0)
            results = await asyncio.gather(*(apply(change) for change in batch))
            retry = [change for change, ok in zip(batch, results, strict=True) if not ok]
            self._queue.settle(batch, retry)
            if retry:
                await asyncio.sleep(self._connection.backoff(attempt))
                attempt += 1
            else:
                attempt = 0

    async def _apply(self, change: Change) -> bool:
        """One guarded write; False means "keep it and retry later"."""
        started = time.monotonic()
        try:
            async with self._locks.hold(change.key):
                outcome = await self._write(change)
        except PyMongoError as exc:
            if is_retryable(exc):
                self._connection.record_failure(exc, "write")
                return False
            self._stats.dropped += 1
            self._stats.failures += 1
            log.error("mirror: dropped %s %s: %s", change.kind.value, change.key[1], exc)
            return True
        finished = time.monotonic()
        self._connection.record_success()
        self._stats.writes += 1
        self._stats.stale_skipped += outcome is Outcome.STALE
        self._stats.write_seconds.append(finished - started)
        self._stats.enqueue_to_ack_seconds.append(finished - change.enqueued)
        metrics.count_mirror_write(change.key[0], outcome.value)
        return True

    async def _write(self, change: Change) -> Outcome:
        document, seq, unique = change.document, change.seq, self.unique
        vms, configs = self._connection.vms, self._connection.configs
        if change.kind is ChangeKind.VM and isinstance(document, VMDocument):
            return await write_vm(vms, document, seq, unique=unique)
        if change.kind is ChangeKind.VM_TERMINATED and isinstance(document, VMDocument):
            return await write_vm_terminated(vms, document, seq, unique=unique)
        if change.kind is ChangeKind.VM_TERMINATED_ID:
            return await mark_vm_terminated(vms, change.key[1], change.when)
        if change.kind is ChangeKind.CONFIG and isinstance(document, EmulatorConfigDocument):
            return await write_config(configs, document, seq, unique=unique)
        if change.kind is ChangeKind.CONFIG_DELETED:
            return await delete_config(configs, change.key[1], seq)
        raise AssertionError(f"unexpected change {change.kind}")
