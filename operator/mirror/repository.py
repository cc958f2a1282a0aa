"""The Mirror: GameVMs and EmulatorConfigs in MongoDB, assembled from its parts.

- changes.py + writer.py: the write queue (``enqueue_*`` never raises, never waits) and
  the writer that drains it with guarded writes, retrying while MongoDB is away;
- connection.py, capabilities.py, indexes.py, reads.py: the client, what the server can
  do, the seed's indexes, the reads of the API;
- resync.py: the full resync from the API server's view (at start, periodically, after a
  reconnect), so nothing is lost even when the operator restarted while MongoDB was down;
- purge.py: the expiry of terminated VMs when the server cannot hold the TTL index;
- ordering.py: changes are ordered by delivery, never by resourceVersion.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal

from pymongo.errors import PyMongoError

from gamevm import metrics
from gamevm.mirror import capabilities as probe
from gamevm.mirror.capabilities import Capabilities, Capability
from gamevm.mirror.changes import Change, ChangeKind, ChangeQueue, Key, KeyLocks
from gamevm.mirror.connection import Connection
from gamevm.mirror.errors import is_retryable
from gamevm.mirror.indexes import TTL_INDEX, IndexReport, ensure_indexes
from gamevm.mirror.mapping import (
    config_document_from,
    terminated_vm_document_from,
    vm_document_from,
)
from gamevm.mirror.ordering import DeliveryClock
from gamevm.mirror.purge import Purger
from gamevm.mirror.reads import LIST_LIMIT, Reader
from gamevm.mirror.resync import (
    Resyncer,
    ResyncReport,
    ResyncSnapshot,
    ResyncSource,
    one_page,
)
from gamevm.mirror.stats import MirrorStats
from gamevm.mirror.writer import Writer
from gamevm.models.documents import EmulatorConfigDocument, VMDocument
from gamevm.models.enums import VMStatus
from gamevm.settings import Settings

log = logging.getLogger(__name__)

PurgeMode = Literal["auto", "always", "off"]
DEFAULT_PURGE_INTERVAL: Final = 60.0
DEFAULT_PURGE_BATCH: Final = 500

__all__ = ["Mirror", "MirrorStats", "ResyncReport", "ResyncSnapshot", "ResyncSource"]


class Mirror:
    """Mirrors GameVMs and EmulatorConfigs into ``vm_instances`` and ``emulator_configs``."""

    def __init__(
        self,
        uri: str,
        database: str,
        *,
        timeout_ms: int = 2000,
        retention_seconds: int = 30 * 24 * 3600,
        resync_interval: float = 300.0,
        retry_max_delay: float = 5.0,
        resync_source: ResyncSource | None = None,
        purge: PurgeMode = "auto",
        purge_interval: float = DEFAULT_PURGE_INTERVAL,
        purge_batch: int = DEFAULT_PURGE_BATCH,
    ) -> None:
        self._retention_seconds = retention_seconds
        self._purge_mode = purge
        self._stats = MirrorStats()
        self._clock = DeliveryClock()
        self._queue = ChangeQueue()
        self._connection = Connection(
            uri, database, self._stats, timeout_ms=timeout_ms, max_delay=retry_max_delay
        )
        self._locks = KeyLocks()
        self._writer = Writer(self._queue, self._connection, self._stats, self._locks)
        self._reader = Reader(self._connection)
        self._resyncer = Resyncer(
            self._connection,
            self._stats,
            self._clock,
            interval=resync_interval,
            unique=lambda: self._writer.unique,
            hold=self._locks.hold,
        )
        self._resyncer.source = resync_source
        self._purger = Purger(
            lambda: self._connection.vms,
            retention_seconds,
            interval=purge_interval,
            batch_size=purge_batch,
            on_purged=self._count_purged,
        )
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._index_report: IndexReport | None = None
        self._capabilities: Capabilities | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, resync_source: ResyncSource | None = None
    ) -> "Mirror | None":
        """The configured mirror, or None when GAMEVM_MONGODB_URI is unset."""
        if settings.mongodb_uri is None:
            return None
        return cls(
            settings.mongodb_uri.get_secret_value(),
            settings.mongodb_database,
            timeout_ms=settings.mongodb_timeout_ms,
            retention_seconds=settings.terminated_retention_seconds,
            resync_interval=settings.mirror_resync_interval,
            retry_max_delay=settings.mirror_retry_max_delay,
            resync_source=resync_source,
            purge=settings.mirror_purge,
            purge_interval=settings.mirror_purge_interval,
            purge_batch=settings.mirror_purge_batch,
        )

    # Lifecycle ---------------------------------------------------------------------------

    def set_resync_source(self, source: ResyncSource) -> None:
        """Where periodic and after-reconnect resyncs get the API server's view."""
        self._resyncer.source = source
        self._resyncer.requested.set()

    async def start(self) -> None:
        """Start the background tasks; returns at once (no connection is awaited)."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._prepare(), name="mirror-prepare"),
            asyncio.create_task(self._after_ready(self._writer.run), name="mirror-writer"),
            asyncio.create_task(self._after_ready(self._resyncer.run), name="mirror-resync"),
        ]
        self._resyncer.requested.set()

    async def aclose(self, flush_timeout: float = 2.0) -> None:
        """Give pending writes ``flush_timeout`` seconds, then stop and disconnect."""
        if self._tasks and self._stats.connected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), flush_timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._connection.aclose()

    async def flush(self, poll: float = 0.02) -> None:
        """Wait until nothing is pending or in flight (tests, shutdown)."""
        while not self._queue.idle:  # noqa: ASYNC110 - two dicts, no single event
            await asyncio.sleep(poll)

    async def _after_ready(self, job: Callable[[], Awaitable[None]]) -> None:
        await self._ready.wait()
        await job()

    async def _prepare(self) -> None:
        """Find out what the server can do, create the indexes it can hold, start the purge."""
        attempt = 0
        while True:
            try:
                found = await probe.detect(self._connection.db)
                report = await ensure_indexes(self._connection.db, self._retention_seconds, found)
                break
            except PyMongoError as exc:
                if is_retryable(exc):
                    self._connection.record_failure(exc, "indexes")
                    await asyncio.sleep(self._connection.backoff(attempt))
                    attempt += 1
                    continue
                log.error("mirror: index creation failed: %s", exc)
                found = Capabilities(ttl=False, partial_filter=False, server="unknown")
                report = IndexReport(missing=[TTL_INDEX])
                break
        self._connection.record_success()
        self._use(found, report)
        self._ready.set()
        if self.purging:
            self._tasks.append(asyncio.create_task(self._purger.run(), name="mirror-purge"))

    def _use(self, found: Capabilities, report: IndexReport) -> None:
        self._capabilities = found
        self._index_report = report
        self._writer.unique = found.unique
        self._stats.ttl_index = report.ttl_available
        self._stats.indexes_ready = True
        for capability in Capability:
            metrics.set_mirror_degraded(capability.value, capability in found.missing)
        for message in self.degradations:
            log.warning("mirror degraded on %s: %s", found.server, message)

    # Capabilities ------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities | None:
        """What the server supports (None until the mirror reached it once)."""
        return self._capabilities

    async def wait_capabilities(self, seconds: float) -> Capabilities | None:
        """The capabilities, waiting up to ``seconds`` for the first probe."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), seconds)
        return self._capabilities

    @property
    def degradations(self) -> list[str]:
        """One sentence per missing capability: what is missing and what the mirror does."""
        if self._capabilities is None:
            return []
        return [
            probe.workaround(capability, self._retention_seconds, self._purger.interval)
            for capability in self._capabilities.missing
        ]

    @property
    def purging(self) -> bool:
        """Whether the operator expires terminated VMs itself (no TTL index, or forced)."""
        if self._purge_mode == "off":
            return False
        if self._purge_mode == "always":
            return True
        return not self._stats.ttl_index

    async def purge_once(self) -> int:
        """One purge pass now (tests, tools); raises PyMongoError when MongoDB is away."""
        return await self._purger.once()

    def _count_purged(self, deleted: int) -> None:
        self._stats.purged += deleted
        metrics.count_mirror_purged(deleted)

    # Enqueue (never raises, never waits) ---------------------------------------------------

    def stamp(self) -> int:
        """A delivery stamp (see ordering.py); take one before listing for ``resync``."""
        return self._clock.stamp()

    def enqueue_vm(self, document: VMDocument | None) -> None:
        """Mirror a GameVM's current state; None (no provider yet, see mapping.py) is ignored."""
        if document is None:
            return
        self._enqueue(ChangeKind.VM, ("vm", document.vm_id), document)

    def enqueue_vm_terminated(self, document: VMDocument | str | None) -> None:
        """Mirror a GameVM's deletion: its last document (terminated_vm_document_from) or id."""
        if document is None:
            return
        if isinstance(document, str):
            self._enqueue(ChangeKind.VM_TERMINATED_ID, ("vm", document), None)
            return
        self._enqueue(ChangeKind.VM_TERMINATED, ("vm", document.vm_id), document)

    def enqueue_config(self, document: EmulatorConfigDocument) -> None:
        """Mirror an EmulatorConfig's current spec."""
        self._enqueue(ChangeKind.CONFIG, ("config", document.console_type.value), document)

    def enqueue_config_deleted(self, console_type: str) -> None:
        """Remove a deleted EmulatorConfig's document (unless a later config replaced it)."""
        self._enqueue(ChangeKind.CONFIG_DELETED, ("config", str(console_type)), None)

    # Body-taking forms for the kopf handlers: map, then enqueue; never raise.

    def enqueue_vm_from(self, body: Mapping[str, Any]) -> None:
        """Mirror a GameVM object as kopf gives it."""
        try:
            self.enqueue_vm(vm_document_from(body))
        except Exception as exc:  # noqa: BLE001 - a bad object must not break a handler
            self._mapping_failed("GameVM", body, exc)

    def enqueue_vm_terminated_from(self, body: Mapping[str, Any]) -> None:
        """Mirror a deleted GameVM object (the DELETED event's last body)."""
        try:
            document = terminated_vm_document_from(body)
            if document is None:
                uid = body.get("metadata", {}).get("uid")
                self.enqueue_vm_terminated(str(uid) if uid else None)
            else:
                self.enqueue_vm_terminated(document)
        except Exception as exc:  # noqa: BLE001 - logged by _mapping_failed
            self._mapping_failed("GameVM", body, exc)

    def enqueue_config_from(self, body: Mapping[str, Any]) -> None:
        """Mirror an EmulatorConfig object as kopf gives it."""
        try:
            self.enqueue_config(config_document_from(body))
        except Exception as exc:  # noqa: BLE001 - logged by _mapping_failed
            self._mapping_failed("EmulatorConfig", body, exc)

    def _mapping_failed(self, kind: str, body: Mapping[str, Any], exc: Exception) -> None:
        self._stats.dropped += 1
        metadata = body.get("metadata", {})
        log.error(
            "mirror: cannot map %s %s/%s: %s",
            kind,
            metadata.get("namespace", ""),
            metadata.get("name", ""),
            type(exc).__name__,
        )

    def _enqueue(
        self, kind: ChangeKind, key: Key, document: VMDocument | EmulatorConfigDocument | None
    ) -> None:
        try:
            now = time.monotonic()
            self._queue.put(Change(kind, key, self._clock.stamp(), document, first_enqueued=now))
        except Exception:  # never let the mirror break a reconcile
            log.exception("mirror: could not enqueue %s %s", kind.value, key[1])

    # Stats -------------------------------------------------------------------------------

    @property
    def stats(self) -> MirrorStats:
        """Pending count, failures, last success, lag (seconds behind the oldest change)."""
        oldest = self._queue.oldest()
        self._stats.pending = len(self._queue)
        self._stats.lag_seconds = time.monotonic() - oldest if oldest is not None else 0.0
        return self._stats

    @property
    def index_report(self) -> IndexReport | None:
        """What the last index creation did (None until it ran)."""
        return self._index_report

    # Resync and reads ----------------------------------------------------------------------

    async def resync(
        self,
        vms: Sequence[VMDocument],
        configs: Sequence[EmulatorConfigDocument],
        *,
        listed_seq: int | None = None,
    ) -> ResyncReport:
        """Fix missing, stale and orphaned documents; raises PyMongoError when MongoDB is away.

        ``listed_seq``: ``stamp()`` taken before the listing was requested (default: now,
        right for a listing taken before anything was enqueued).
        """
        seq = self._clock.stamp() if listed_seq is None else listed_seq
        return await self._resyncer.resync(one_page(vms), configs, seq)

    def vm_documents(self, bodies: Iterable[Mapping[str, Any]]) -> list[VMDocument]:
        """Documents from GameVMs (LIST items); unmappable objects are logged and skipped."""
        vms: list[VMDocument] = []
        for body in bodies:
            try:
                document = vm_document_from(body)
            except Exception as exc:  # noqa: BLE001 - logged by _mapping_failed
                self._mapping_failed("GameVM", body, exc)
                continue
            if document is not None:
                vms.append(document)
        return vms

    def config_documents(self, bodies: Iterable[Mapping[str, Any]]) -> list[EmulatorConfigDocument]:
        """Documents from EmulatorConfigs (LIST items); unmappable ones are logged and skipped."""
        configs: list[EmulatorConfigDocument] = []
        for body in bodies:
            try:
                configs.append(config_document_from(body))
            except Exception as exc:  # noqa: BLE001 - logged by _mapping_failed
                self._mapping_failed("EmulatorConfig", body, exc)
        return configs

    async def get_vm(self, vm_id: str) -> VMDocument | None:
        """One VM document, or None. Raises MirrorUnavailableError when MongoDB is away."""
        return await self._reader.get_vm(vm_id)

    async def list_vms(
        self, user_id: str | None = None, status: VMStatus | None = None, limit: int = LIST_LIMIT
    ) -> list[VMDocument]:
        """VM documents, oldest first, filtered by owner and/or status."""
        return await self._reader.list_vms(user_id, status, limit)

    async def get_config(self, console_type: str) -> EmulatorConfigDocument | None:
        """One EmulatorConfig document, or None."""
        return await self._reader.get_config(console_type)
