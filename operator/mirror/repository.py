"""The Mirror: a non-blocking, coalescing, retrying writer into MongoDB, plus reads and resync.

Handlers call ``enqueue_*``: it never raises and never waits. A background writer takes
the latest pending change per key (a VM id or a console), writes it with a guarded upsert,
and while MongoDB is away keeps the changes and retries with capped exponential backoff
and jitter. After a reconnect, at start-up and every ``resync_interval`` seconds it runs a
full resync from ``resync_source`` (the API server's view), so nothing is lost even when
the operator restarted while MongoDB was down.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from gamevm import metrics
from gamevm.mirror.documents import config_from_stored, vm_from_stored
from gamevm.mirror.errors import MirrorUnavailableError, is_retryable
from gamevm.mirror.indexes import TTL_INDEX, IndexReport, ensure_indexes
from gamevm.mirror.mapping import (
    config_document_from,
    terminated_vm_document_from,
    vm_document_from,
)
from gamevm.mirror.resync import ResyncReport, resync_configs, resync_vms
from gamevm.mirror.writes import (
    Collection,
    Outcome,
    delete_config,
    mark_vm_terminated,
    write_config,
    write_vm,
    write_vm_terminated,
)
from gamevm.models.documents import (
    EMULATOR_CONFIG_COLLECTION,
    VM_COLLECTION,
    EmulatorConfigDocument,
    VMDocument,
)
from gamevm.models.enums import VMStatus
from gamevm.settings import Settings

log = logging.getLogger(__name__)

MAX_CONCURRENT_WRITES: Final = 16
INITIAL_RETRY_DELAY: Final = 0.2
LATENCY_SAMPLES: Final = 10_000
LIST_LIMIT: Final = 1000


@dataclass(frozen=True)
class ResyncSnapshot:
    """The API server's view: every GameVM and EmulatorConfig, as documents.

    ``*_version`` is the LIST response's metadata.resourceVersion (see resync.py).
    """

    vms: Sequence[VMDocument]
    configs: Sequence[EmulatorConfigDocument]
    vms_version: int | None = None
    configs_version: int | None = None


ResyncSource = Callable[[], Awaitable[ResyncSnapshot]]


class _Kind(StrEnum):
    VM = "vm"
    VM_TERMINATED = "vm_terminated"
    VM_TERMINATED_ID = "vm_terminated_id"
    CONFIG = "config"
    CONFIG_DELETED = "config_deleted"


@dataclass
class _Change:
    kind: _Kind
    key: tuple[str, str]
    version: int
    document: VMDocument | EmulatorConfigDocument | None
    first_enqueued: float
    enqueued: float = field(default_factory=time.monotonic)
    when: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def final(self) -> bool:
        """A VM's termination beats any live update of the same vm_id."""
        return self.kind in (_Kind.VM_TERMINATED, _Kind.VM_TERMINATED_ID)

    def supersedes(self, other: "_Change") -> bool:
        if self.final != other.final:
            return self.final
        return self.version >= other.version


@dataclass
class MirrorStats:
    """Counters for metrics and health (read ``Mirror.stats``)."""

    pending: int = 0
    writes: int = 0
    stale_skipped: int = 0
    failures: int = 0
    dropped: int = 0
    resyncs: int = 0
    connected: bool = False
    indexes_ready: bool = False
    ttl_index: bool = False
    last_success: datetime | None = None
    last_failure: str | None = None
    lag_seconds: float = 0.0
    last_resync: ResyncReport | None = None
    write_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    enqueue_to_ack_seconds: deque[float] = field(
        default_factory=lambda: deque(maxlen=LATENCY_SAMPLES)
    )


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
    ) -> None:
        self._uri = uri
        self._database_name = database
        self._timeout_ms = timeout_ms
        self._retention_seconds = retention_seconds
        self._resync_interval = resync_interval
        self._retry_max_delay = retry_max_delay
        self._resync_source = resync_source
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._pending: dict[tuple[str, str], _Change] = {}
        self._inflight: dict[tuple[str, str], _Change] = {}
        self._wake = asyncio.Event()
        self._indexes_ready = asyncio.Event()
        self._resync_requested = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stats = MirrorStats()
        self._index_report: IndexReport | None = None

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
        )

    # Lifecycle ---------------------------------------------------------------------------

    def set_resync_source(self, source: ResyncSource) -> None:
        """Where periodic and after-reconnect resyncs get the API server's view."""
        self._resync_source = source
        self._resync_requested.set()

    async def start(self) -> None:
        """Start the background tasks; returns at once (no connection is awaited)."""
        if self._tasks:
            return
        self._client_or_create()
        self._tasks = [
            asyncio.create_task(self._index_loop(), name="mirror-indexes"),
            asyncio.create_task(self._writer_loop(), name="mirror-writer"),
            asyncio.create_task(self._resync_loop(), name="mirror-resync"),
        ]
        self._resync_requested.set()
        self._wake.set()

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
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def flush(self, poll: float = 0.02) -> None:
        """Wait until nothing is pending or in flight (tests, shutdown)."""
        while self._pending or self._inflight:  # noqa: ASYNC110 - two dicts, no single event
            await asyncio.sleep(poll)

    # Enqueue (never raises, never waits) ---------------------------------------------------

    def enqueue_vm(self, document: VMDocument | None) -> None:
        """Mirror a GameVM's current state; None (no provider yet, see mapping.py) is ignored."""
        if document is None:
            return
        self._enqueue(_Kind.VM, ("vm", document.vm_id), document.source_version, document)

    def enqueue_vm_terminated(self, document: VMDocument | str | None) -> None:
        """Mirror a GameVM's deletion: its last document (terminated_vm_document_from) or id."""
        if document is None:
            return
        if isinstance(document, str):
            self._enqueue(_Kind.VM_TERMINATED_ID, ("vm", document), 0, None)
            return
        self._enqueue(
            _Kind.VM_TERMINATED, ("vm", document.vm_id), document.source_version, document
        )

    def enqueue_config(self, document: EmulatorConfigDocument) -> None:
        """Mirror an EmulatorConfig's current spec."""
        key = ("config", document.console_type.value)
        self._enqueue(_Kind.CONFIG, key, document.source_version, document)

    def enqueue_config_deleted(self, console_type: str, source_version: int | None = None) -> None:
        """Remove a deleted EmulatorConfig's document (unless a newer config replaced it)."""
        self._enqueue(
            _Kind.CONFIG_DELETED, ("config", str(console_type)), source_version or 0, None
        )

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
        self,
        kind: _Kind,
        key: tuple[str, str],
        version: int,
        document: VMDocument | EmulatorConfigDocument | None,
    ) -> None:
        try:
            now = time.monotonic()
            change = _Change(kind, key, version, document, first_enqueued=now)
            current = self._pending.get(key)
            if current is None:
                self._pending[key] = change
            elif change.supersedes(current):
                change.first_enqueued = current.first_enqueued  # lag counts from the first
                self._pending[key] = change
            self._wake.set()
        except Exception:  # never let the mirror break a reconcile
            log.exception("mirror: could not enqueue %s %s", kind.value, key[1])

    # Stats -------------------------------------------------------------------------------

    @property
    def stats(self) -> MirrorStats:
        """Pending count, failures, last success, lag (seconds behind the oldest change)."""
        waiting = list(self._pending.values()) + list(self._inflight.values())
        self._stats.pending = len(self._pending) + len(self._inflight)
        self._stats.lag_seconds = (
            time.monotonic() - min(change.first_enqueued for change in waiting) if waiting else 0.0
        )
        return self._stats

    @property
    def index_report(self) -> IndexReport | None:
        """What the last index creation did (None until it ran)."""
        return self._index_report

    # Connection --------------------------------------------------------------------------

    def _client_or_create(self) -> AsyncMongoClient[dict[str, Any]]:
        if self._client is None:
            # Constructing the client does no I/O; it connects on first use.
            self._client = AsyncMongoClient(
                self._uri,
                tz_aware=True,
                appname="gamevm-operator",
                serverSelectionTimeoutMS=self._timeout_ms,
                connectTimeoutMS=self._timeout_ms,
                socketTimeoutMS=self._timeout_ms * 5,
            )
        return self._client

    @property
    def _db(self) -> AsyncDatabase[dict[str, Any]]:
        return self._client_or_create()[self._database_name]

    @property
    def _vms(self) -> Collection:
        return self._db[VM_COLLECTION]

    @property
    def _configs(self) -> Collection:
        return self._db[EMULATOR_CONFIG_COLLECTION]

    def _backoff(self, attempt: int) -> float:
        delay: float = min(self._retry_max_delay, INITIAL_RETRY_DELAY * 2.0**attempt)
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security

    def _record_success(self) -> None:
        if not self._stats.connected:
            if self._stats.last_failure is not None:
                log.info("mirror: MongoDB reachable again")
                self._resync_requested.set()
                self._reconnected.set()
            self._stats.connected = True
        self._stats.last_success = datetime.now(UTC)

    def _record_failure(self, exc: BaseException, what: str) -> None:
        metrics.count_mirror_failure(what)
        self._stats.failures += 1
        self._stats.last_failure = f"{what}: {type(exc).__name__}"
        if self._stats.connected or self._stats.failures == 1:
            log.warning("mirror: MongoDB unavailable (%s: %s); retrying", what, type(exc).__name__)
        self._stats.connected = False

    # Background tasks --------------------------------------------------------------------

    async def _index_loop(self) -> None:
        attempt = 0
        while True:
            try:
                report = await ensure_indexes(self._db, self._retention_seconds)
            except PyMongoError as exc:
                if not is_retryable(exc):
                    log.error("mirror: index creation failed: %s", exc)
                    report = IndexReport(missing=[TTL_INDEX])
                else:
                    self._record_failure(exc, "indexes")
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
            self._record_success()
            self._index_report = report
            self._stats.ttl_index = report.ttl_available
            self._stats.indexes_ready = True
            self._indexes_ready.set()
            return

    async def _writer_loop(self) -> None:
        await self._indexes_ready.wait()
        attempt = 0
        limit = asyncio.Semaphore(MAX_CONCURRENT_WRITES)
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            if attempt:
                # MongoDB was away: probe with one change instead of timing out a whole batch.
                key = next(iter(self._pending))
                batch = {key: self._pending.pop(key)}
            else:
                batch, self._pending = self._pending, {}
            self._inflight.update(batch)

            async def apply(change: _Change) -> bool:
                async with limit:
                    return await self._apply(change)

            results = await asyncio.gather(*(apply(change) for change in batch.values()))
            retry = [change for change, ok in zip(batch.values(), results, strict=True) if not ok]
            for change in batch.values():
                self._inflight.pop(change.key, None)
            for change in retry:
                newer = self._pending.get(change.key)
                if newer is None or not newer.supersedes(change):
                    self._pending[change.key] = change
                else:
                    newer.first_enqueued = min(newer.first_enqueued, change.first_enqueued)
            if retry:
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
            else:
                attempt = 0

    async def _apply(self, change: _Change) -> bool:
        """One guarded write; False means "keep it and retry later"."""
        started = time.monotonic()
        try:
            outcome = await self._write(change)
        except PyMongoError as exc:
            if is_retryable(exc):
                self._record_failure(exc, "write")
                return False
            self._stats.dropped += 1
            self._stats.failures += 1
            log.error("mirror: dropped %s %s: %s", change.kind.value, change.key[1], exc)
            return True
        finished = time.monotonic()
        self._record_success()
        self._stats.writes += 1
        self._stats.stale_skipped += outcome is Outcome.STALE
        self._stats.write_seconds.append(finished - started)
        self._stats.enqueue_to_ack_seconds.append(finished - change.enqueued)
        return True

    async def _write(self, change: _Change) -> Outcome:
        document = change.document
        if change.kind is _Kind.VM and isinstance(document, VMDocument):
            return await write_vm(self._vms, document)
        if change.kind is _Kind.VM_TERMINATED and isinstance(document, VMDocument):
            return await write_vm_terminated(self._vms, document)
        if change.kind is _Kind.VM_TERMINATED_ID:
            return await mark_vm_terminated(self._vms, change.key[1], change.when)
        if change.kind is _Kind.CONFIG and isinstance(document, EmulatorConfigDocument):
            return await write_config(self._configs, document)
        if change.kind is _Kind.CONFIG_DELETED:
            return await delete_config(self._configs, change.key[1], change.version or None)
        raise AssertionError(f"unexpected change {change.kind}")

    async def _resync_loop(self) -> None:
        await self._indexes_ready.wait()
        attempt = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resync_requested.wait(), self._resync_interval)
            self._resync_requested.clear()
            try:
                await self._resync_from_source()
                attempt = 0
            except Exception as exc:  # noqa: BLE001 - the source or MongoDB failed: retry
                if isinstance(exc, PyMongoError):
                    self._record_failure(exc, "resync")
                else:
                    log.warning("mirror: resync source failed: %s", type(exc).__name__)
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                self._resync_requested.set()

    async def _resync_from_source(self) -> None:
        if not self._stats.ttl_index:
            await self._sweep_expired()
        if self._resync_source is None:
            return
        snapshot = await self._resync_source()
        await self.resync(
            snapshot.vms,
            snapshot.configs,
            vms_version=snapshot.vms_version,
            configs_version=snapshot.configs_version,
        )

    async def _sweep_expired(self) -> None:
        """Do the TTL index's job when the server refused it (see indexes.py)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self._retention_seconds)
        result = await self._vms.delete_many(
            {"status": VMStatus.TERMINATED.value, "created_at": {"$lt": cutoff}}
        )
        if result.deleted_count:
            log.info("mirror: removed %d expired terminated VMs", result.deleted_count)

    # Resync and reads ----------------------------------------------------------------------

    async def resync(
        self,
        vms: Sequence[VMDocument],
        configs: Sequence[EmulatorConfigDocument],
        *,
        vms_version: int | None = None,
        configs_version: int | None = None,
    ) -> ResyncReport:
        """Fix missing, stale and orphaned documents; raises PyMongoError when MongoDB is away."""
        started = time.monotonic()
        now = datetime.now(UTC)
        report = ResyncReport(
            vms=await resync_vms(self._vms, vms, vms_version, now),
            configs=await resync_configs(self._configs, configs, configs_version),
        )
        report.seconds = time.monotonic() - started
        self._record_success()
        self._stats.resyncs += 1
        self._stats.last_resync = report
        if report.changes:
            log.info(
                "mirror: resync fixed %d VM and %d config documents in %.2f s",
                report.vms.changes,
                report.configs.changes,
                report.seconds,
            )
        return report

    def snapshot_from(
        self,
        vm_bodies: Sequence[Mapping[str, Any]],
        config_bodies: Sequence[Mapping[str, Any]],
        *,
        vms_version: int | None = None,
        configs_version: int | None = None,
    ) -> ResyncSnapshot:
        """Documents from API objects (LIST items); unmappable objects are logged and skipped.

        Pass each LIST's ``metadata.resourceVersion`` as ``*_version`` so an object created
        while the resync runs is never taken for an orphan (see resync.py).
        """
        vms: list[VMDocument] = []
        for body in vm_bodies:
            try:
                document = vm_document_from(body)
            except Exception as exc:  # noqa: BLE001 - logged by _mapping_failed
                self._mapping_failed("GameVM", body, exc)
                continue
            if document is not None:
                vms.append(document)
        configs: list[EmulatorConfigDocument] = []
        for body in config_bodies:
            try:
                configs.append(config_document_from(body))
            except Exception as exc:  # noqa: BLE001 - logged by _mapping_failed
                self._mapping_failed("EmulatorConfig", body, exc)
        return ResyncSnapshot(vms, configs, vms_version, configs_version)

    async def resync_from(
        self,
        vm_bodies: Sequence[Mapping[str, Any]],
        config_bodies: Sequence[Mapping[str, Any]],
        *,
        vms_version: int | None = None,
        configs_version: int | None = None,
    ) -> ResyncReport | None:
        """``resync`` from API objects (LIST items); never raises, None when it failed."""
        snapshot = self.snapshot_from(
            vm_bodies, config_bodies, vms_version=vms_version, configs_version=configs_version
        )
        try:
            return await self.resync(
                snapshot.vms,
                snapshot.configs,
                vms_version=snapshot.vms_version,
                configs_version=snapshot.configs_version,
            )
        except PyMongoError as exc:
            self._record_failure(exc, "resync")
            return None

    async def wait_for_resync(self, seconds: float) -> None:
        """Sleep up to ``seconds``, or less when MongoDB just came back.

        A periodic resync loop outside the mirror uses this in place of ``asyncio.sleep``
        to also resync right after a reconnect.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reconnected.wait(), seconds)
        self._reconnected.clear()

    async def get_vm(self, vm_id: str) -> VMDocument | None:
        """One VM document, or None. Raises MirrorUnavailableError when MongoDB is away."""
        try:
            stored = await self._vms.find_one({"vm_id": vm_id})
        except PyMongoError as exc:
            raise MirrorUnavailableError(str(type(exc).__name__)) from exc
        return None if stored is None else vm_from_stored(stored)

    async def list_vms(
        self, user_id: str | None = None, status: VMStatus | None = None, limit: int = LIST_LIMIT
    ) -> list[VMDocument]:
        """VM documents, oldest first, filtered by owner and/or status."""
        query: dict[str, Any] = {}
        if user_id is not None:
            query["user_id"] = user_id
        if status is not None:
            query["status"] = status.value
        try:
            cursor = self._vms.find(query).sort("created_at", ASCENDING).limit(limit)
            return [vm_from_stored(stored) async for stored in cursor]
        except PyMongoError as exc:
            raise MirrorUnavailableError(str(type(exc).__name__)) from exc

    async def get_config(self, console_type: str) -> EmulatorConfigDocument | None:
        """One EmulatorConfig document, or None."""
        try:
            stored = await self._configs.find_one({"console_type": console_type})
        except PyMongoError as exc:
            raise MirrorUnavailableError(str(type(exc).__name__)) from exc
        return None if stored is None else config_from_stored(stored)
