"""Full resync: make both collections match a listing from the API server.

Missing documents are inserted, stale ones replaced, orphans (no object any more) fixed:
orphan VMs become ``terminated`` (kept until the TTL), orphan configs are removed.

``list_version`` is the resourceVersion of the LIST response. A document whose
``source_version`` is above it was written from an event newer than the listing (an object
created after the list was taken) and is left alone. Without it, a VM document updated in
the last ORPHAN_GRACE seconds is left for the next resync instead (termination is final).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from gamevm.mirror.documents import same_content, stored_fields
from gamevm.mirror.writes import Collection, Outcome, mark_vm_terminated, write_config, write_vm
from gamevm.models.documents import EmulatorConfigDocument, VMDocument
from gamevm.models.enums import VMStatus

_TERMINATED = VMStatus.TERMINATED.value
ORPHAN_GRACE: Final = timedelta(minutes=2)


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


def _version(stored: dict[str, Any]) -> int:
    value = stored.get("source_version", 0)
    return value if isinstance(value, int) else 0


def _recent(stored: dict[str, Any], now: datetime) -> bool:
    updated = stored.get("updated_at")
    return isinstance(updated, datetime) and updated > now - ORPHAN_GRACE


async def _replace_if_not_newer(
    collection: Collection, key: dict[str, Any], stored: dict[str, Any], fields: dict[str, Any]
) -> bool:
    """Replace the exact stored version (so a concurrent newer write wins), dropping stray keys."""
    guard = {**key, "source_version": _version(stored)}
    if "status" in stored:
        guard["status"] = stored["status"]
    result = await collection.replace_one(guard, fields)
    return result.matched_count == 1


async def resync_vms(
    collection: Collection,
    documents: Sequence[VMDocument],
    list_version: int | None,
    now: datetime,
) -> CollectionReport:
    report = CollectionReport()
    stored_by_id = {doc["vm_id"]: doc async for doc in collection.find({}) if "vm_id" in doc}
    listed: set[str] = set()
    for document in documents:
        listed.add(document.vm_id)
        stored = stored_by_id.get(document.vm_id)
        fields = stored_fields(document)
        if stored is None:
            outcome = await write_vm(collection, document)
            report.inserted += outcome is Outcome.WRITTEN
            report.skipped_newer += outcome is Outcome.STALE
        elif stored.get("status") == _TERMINATED or _version(stored) > document.source_version:
            report.skipped_newer += 1
        elif same_content(stored, fields):
            report.unchanged += 1
        elif await _replace_if_not_newer(collection, {"vm_id": document.vm_id}, stored, fields):
            report.updated += 1
        else:
            report.skipped_newer += 1
    for vm_id, stored in stored_by_id.items():
        if vm_id in listed or stored.get("status") == _TERMINATED:
            continue
        if list_version is not None and _version(stored) > list_version:
            continue
        if list_version is None and _recent(stored, now):
            continue
        outcome = await mark_vm_terminated(collection, vm_id, now)
        report.orphans_fixed += outcome is Outcome.WRITTEN
    return report


async def resync_configs(
    collection: Collection,
    documents: Sequence[EmulatorConfigDocument],
    list_version: int | None,
) -> CollectionReport:
    report = CollectionReport()
    stored_by_console = {
        doc["console_type"]: doc async for doc in collection.find({}) if "console_type" in doc
    }
    listed: set[str] = set()
    for document in documents:
        console = document.console_type.value
        listed.add(console)
        stored = stored_by_console.get(console)
        fields = stored_fields(document)
        if stored is None:
            outcome = await write_config(collection, document)
            report.inserted += outcome is Outcome.WRITTEN
            report.skipped_newer += outcome is Outcome.STALE
        elif _version(stored) > document.source_version:
            report.skipped_newer += 1
        elif same_content(stored, fields):
            report.unchanged += 1
        elif await _replace_if_not_newer(collection, {"console_type": console}, stored, fields):
            report.updated += 1
        else:
            report.skipped_newer += 1
    for console, stored in stored_by_console.items():
        if console in listed:
            continue
        if list_version is not None and _version(stored) > list_version:
            continue
        result = await collection.delete_one(
            {"console_type": console, "source_version": _version(stored)}
        )
        report.orphans_fixed += result.deleted_count
    return report
