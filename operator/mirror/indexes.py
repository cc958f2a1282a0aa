"""The seed's indexes, created idempotently (and repaired when their options changed)."""

import logging
from dataclasses import dataclass, field
from typing import Any, Final

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from gamevm.mirror.errors import is_retryable
from gamevm.models.documents import EMULATOR_CONFIG_COLLECTION, VM_COLLECTION
from gamevm.models.enums import VMStatus

log = logging.getLogger(__name__)

VM_ID_INDEX: Final = "vm_id_unique"
STATUS_USER_INDEX: Final = "status_user_id"
CONSOLE_PROVIDER_INDEX: Final = "console_type_provider"
TTL_INDEX: Final = "created_at_ttl_terminated"
CONSOLE_TYPE_INDEX: Final = "console_type_unique"

_OPTIONS_CONFLICT: Final = frozenset({85, 86})  # IndexOptionsConflict, IndexKeySpecsConflict


def vm_indexes(retention_seconds: int) -> list[IndexModel]:
    """`vm_instances`: vm_id unique, (status, user_id), (console_type, provider), TTL."""
    return [
        IndexModel([("vm_id", ASCENDING)], name=VM_ID_INDEX, unique=True),
        IndexModel([("status", ASCENDING), ("user_id", ASCENDING)], name=STATUS_USER_INDEX),
        IndexModel(
            [("console_type", ASCENDING), ("provider", ASCENDING)], name=CONSOLE_PROVIDER_INDEX
        ),
        # Only terminated VMs expire: the partial filter keeps live documents forever.
        IndexModel(
            [("created_at", ASCENDING)],
            name=TTL_INDEX,
            expireAfterSeconds=retention_seconds,
            partialFilterExpression={"status": VMStatus.TERMINATED.value},
        ),
    ]


def config_indexes() -> list[IndexModel]:
    """`emulator_configs`: one document per console."""
    return [IndexModel([("console_type", ASCENDING)], name=CONSOLE_TYPE_INDEX, unique=True)]


@dataclass
class IndexReport:
    """What ensure_indexes did; `missing` lists indexes the server refused."""

    created_or_present: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ttl_available(self) -> bool:
        return TTL_INDEX not in self.missing


async def _ensure_one(
    collection: AsyncCollection[dict[str, Any]], index: IndexModel, report: IndexReport
) -> None:
    spec = index.document
    name = str(spec["name"])
    try:
        await collection.create_indexes([index])
        report.created_or_present.append(name)
        return
    except OperationFailure as exc:
        if is_retryable(exc):
            raise
        if exc.code not in _OPTIONS_CONFLICT:
            # The server lacks this kind of index (e.g. TTL with a partial filter): the
            # mirror degrades (see Mirror._sweep_expired) instead of failing.
            log.warning("index %s refused by the server (code %s): %s", name, exc.code, exc)
            report.missing.append(name)
            return
    # Same name, other options (e.g. the retention changed): update in place if the
    # server can, else rebuild.
    if "expireAfterSeconds" in spec:
        try:
            await collection.database.command(
                {
                    "collMod": collection.name,
                    "index": {"name": name, "expireAfterSeconds": spec["expireAfterSeconds"]},
                }
            )
            report.repaired.append(name)
            return
        except OperationFailure as exc:
            if is_retryable(exc):
                raise
    await collection.drop_index(name)
    await collection.create_indexes([index])
    report.repaired.append(name)


async def ensure_indexes(
    database: AsyncDatabase[dict[str, Any]], retention_seconds: int
) -> IndexReport:
    """Create every index of both collections; safe to run on every start."""
    report = IndexReport()
    for index in vm_indexes(retention_seconds):
        await _ensure_one(database[VM_COLLECTION], index, report)
    for index in config_indexes():
        await _ensure_one(database[EMULATOR_CONFIG_COLLECTION], index, report)
    return report
