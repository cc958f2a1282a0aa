"""Full resync: make both collections match a listing from the API server.

Missing documents are inserted, stale ones replaced, orphans (no object any more) fixed:
orphan VMs become ``terminated`` (kept for the retention), orphan configs are removed.

``listed_seq`` is the delivery stamp taken just before the listing was requested (see
ordering.py). A document with a higher stamp was written from an event delivered after
that (e.g. an object created while the resync ran) and is left alone.

``Resyncer`` runs it at start, every ``interval`` seconds and after a reconnect, from the
source the operator sets (the API server's LIST of both kinds). GameVMs come in pages
(``GAMEVM_MIRROR_RESYNC_PAGE_SIZE``, the LIST's ``limit``/``continue``) and are resynced
page by page against the stored documents of that page: at 10,000 VMs neither the
listing nor the stored collection is held whole (bench/README.md, memory), only the
listed ids for the orphan pass.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pymongo.errors import PyMongoError

from gamevm.mirror.documents import same_content, stored_fields
from gamevm.mirror.ordering import SEQ_FIELD, DeliveryClock, stored_seq
from gamevm.mirror.writes import Collection, Outcome, mark_vm_terminated, write_config, write_vm
from gamevm.models.documents import EmulatorConfigDocument, VMDocument
from gamevm.models.enums import VMStatus

if TYPE_CHECKING:
    from gamevm.mirror.connection import Connection
    from gamevm.mirror.stats import MirrorStats

log = logging.getLogger(__name__)

_TERMINATED = VMStatus.TERMINATED.value

Hold = Callable[[tuple[str, str]], AbstractAsyncContextManager[None]]
"""Holds a document's key while the resync writes it (changes.KeyLocks.hold)."""


def _no_lock(_key: tuple[str, str]) -> AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


@dataclass
class CollectionReport:
    """Counts of what a resync did to one collection."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_newer: int = 0
    orphans_fixed: int = 0

    @property
    def changes(self) -> int:
        return self.inserted + self.updated + self.orphans_fixed


@dataclass
class ResyncReport:
    """What one full resync did."""

    vms: CollectionReport
    configs: CollectionReport
    seconds: float = 0.0

    @property
    def changes(self) -> int:
        return self.vms.changes + self.configs.changes


async def _replace_if_unchanged(
    collection: Collection,
    key: dict[str, Any],
    stored: dict[str, Any],
    fields: dict[str, Any],
    seq: int,
) -> bool:
    """Replace exactly the stored document (a concurrent later write wins), dropping stray keys."""
    guard: dict[str, Any] = {**key}
    guard[SEQ_FIELD] = stored.get(SEQ_FIELD, {"$exists": False})
    if "status" in stored:
        guard["status"] = stored["status"]
    result = await collection.replace_one(guard, {**fields, SEQ_FIELD: seq})
    return result.matched_count == 1


VMPages = AsyncIterable[Sequence[VMDocument]]
"""The listed GameVMs as documents, one page of the API server's LIST at a time."""


async def one_page(documents: Sequence[VMDocument]) -> AsyncIterator[Sequence[VMDocument]]:
    """A listing already in memory, as one page."""
    yield documents


async def resync_vms(
    collection: Collection,
    pages: VMPages,
    listed_seq: int,
    now: datetime,
    *,
    unique: bool = True,
    hold: Hold = _no_lock,
) -> CollectionReport:
    report = CollectionReport()
    listed: set[str] = set()
    async for page in pages:
        ids = [document.vm_id for document in page]
        stored_by_id = {doc["vm_id"]: doc async for doc in collection.find({"vm_id": {"$in": ids}})}
        for document in page:
            listed.add(document.vm_id)
            async with hold(("vm", document.vm_id)):
                await _resync_vm(collection, document, stored_by_id, listed_seq, unique, report)
    # Orphans: stored and not terminated, yet in no page. Only ids and stamps are read.
    live = collection.find({"status": {"$ne": _TERMINATED}}, {"vm_id": 1, SEQ_FIELD: 1})
    orphans = [
        stored["vm_id"]
        async for stored in live
        if "vm_id" in stored and stored["vm_id"] not in listed and stored_seq(stored) <= listed_seq
    ]
    for vm_id in orphans:
        async with hold(("vm", vm_id)):
            outcome = await mark_vm_terminated(collection, vm_id, now, seq_at_most=listed_seq)
        report.orphans_fixed += outcome is Outcome.WRITTEN
    return report


async def _resync_vm(
    collection: Collection,
    document: VMDocument,
    stored_by_id: dict[str, dict[str, Any]],
    listed_seq: int,
    unique: bool,
    report: CollectionReport,
) -> None:
    stored = stored_by_id.get(document.vm_id)
    fields = stored_fields(document)
    if stored is None:
        outcome = await write_vm(collection, document, listed_seq, unique=unique)
        report.inserted += outcome is Outcome.WRITTEN
        report.skipped_newer += outcome is Outcome.STALE
    elif stored.get("status") == _TERMINATED or stored_seq(stored) > listed_seq:
        report.skipped_newer += 1
    elif same_content(stored, fields):
        report.unchanged += 1
    elif await _replace_if_unchanged(
        collection, {"vm_id": document.vm_id}, stored, fields, listed_seq
    ):
        report.updated += 1
    else:
        report.skipped_newer += 1


async def resync_configs(
    collection: Collection,
    documents: Sequence[EmulatorConfigDocument],
    listed_seq: int,
    *,
    unique: bool = True,
    hold: Hold = _no_lock,
) -> CollectionReport:
    report = CollectionReport()
    stored_by_console = {
        doc["console_type"]: doc async for doc in collection.find({}) if "console_type" in doc
    }
    listed: set[str] = set()
    for document in documents:
        console = document.console_type.value
        listed.add(console)
        async with hold(("config", console)):
            await _resync_config(
                collection, document, stored_by_console, listed_seq, unique, report
            )
    for console, stored in stored_by_console.items():
        if console in listed or stored_seq(stored) > listed_seq:
            continue
        guard: dict[str, Any] = {"console_type": console}
        guard[SEQ_FIELD] = stored.get(SEQ_FIELD, {"$exists": False})
        async with hold(("config", console)):
            result = await collection.delete_one(guard)
        report.orphans_fixed += result.deleted_count
    return report


async def _resync_config(
    collection: Collection,
    document: EmulatorConfigDocument,
    stored_by_console: dict[str, dict[str, Any]],
    listed_seq: int,
    unique: bool,
    report: CollectionReport,
) -> None:
    console = document.console_type.value
    stored = stored_by_console.get(console)
    fields = stored_fields(document)
    if stored is None:
        outcome = await write_config(collection, document, listed_seq, unique=unique)
        report.inserted += outcome is Outcome.WRITTEN
        report.skipped_newer += outcome is Outcome.STALE
    elif stored_seq(stored) > listed_seq:
        report.skipped_newer += 1
    elif same_content(stored, fields):
        report.unchanged += 1
    elif await _replace_if_unchanged(
        collection, {"console_type": console}, stored, fields, listed_seq
    ):
        report.updated += 1
    else:
        report.skipped_newer += 1


@dataclass(frozen=True)
class ResyncSnapshot:
    """The API server's view: every GameVM (in pages) and EmulatorConfig, as documents."""

    vm_pages: VMPages
    configs: Sequence[EmulatorConfigDocument]

    @classmethod
    def whole(
        cls, vms: Sequence[VMDocument], configs: Sequence[EmulatorConfigDocument]
    ) -> "ResyncSnapshot":
        """A listing already in memory."""
        return cls(one_page(vms), configs)


ResyncSource = Callable[[], Awaitable[ResyncSnapshot]]


class Resyncer:
    """Resyncs at start, every ``interval`` seconds and right after MongoDB comes back."""

    def __init__(
        self,
        connection: "Connection",
        stats: "MirrorStats",
        clock: DeliveryClock,
        *,
        interval: float,
        unique: Callable[[], bool],
        hold: Hold = _no_lock,
    ) -> None:
        self._connection = connection
        self._stats = stats
        self._clock = clock
        self._interval = interval
        self._unique = unique
        self._hold = hold
        self.source: ResyncSource | None = None
        self.requested = asyncio.Event()
        connection.on_reconnect(self.requested.set)

    async def run(self) -> None:
        attempt = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.requested.wait(), self._interval)
            self.requested.clear()
            if self.source is None:
                continue
            try:
                # The stamp comes first: events delivered after it win over the listing.
                listed_seq = self._clock.stamp()
                snapshot = await self.source()
                await self.resync(snapshot.vm_pages, snapshot.configs, listed_seq)
                attempt = 0
            except Exception as exc:  # noqa: BLE001 - the source or MongoDB failed: retry
                if isinstance(exc, PyMongoError):
                    self._connection.record_failure(exc, "resync")
                else:
                    log.warning("mirror: resync source failed: %s", type(exc).__name__)
                await asyncio.sleep(self._connection.backoff(attempt))
                attempt += 1
                self.requested.set()

    async def resync(
        self,
        vm_pages: VMPages,
        configs: Sequence[EmulatorConfigDocument],
        listed_seq: int,
    ) -> ResyncReport:
        """Fix missing, stale and orphaned documents; raises PyMongoError when MongoDB is away."""
        started = time.monotonic()
        unique = self._unique()
        report = ResyncReport(
            vms=await resync_vms(
                self._connection.vms,
                vm_pages,
                listed_seq,
                datetime.now(UTC),
                unique=unique,
                hold=self._hold,
            ),
            configs=await resync_configs(
                self._connection.configs, configs, listed_seq, unique=unique, hold=self._hold
            ),
        )
        report.seconds = time.monotonic() - started
        self._connection.record_success()
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
