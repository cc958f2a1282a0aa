"""The seed's indexes, created idempotently (and repaired when their options changed).

What the server cannot hold is left out (see capabilities.py): without TTL or partial
filters there is no expiry index (the operator purges instead, see purge.py); without
unique indexes the keys get plain ones.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Final

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from gamevm.mirror.capabilities import Capabilities
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


def vm_indexes(
    retention_seconds: int, capabilities: Capabilities | None = None
) -> list[IndexModel]:
    """`vm_instances`: vm_id unique, (status, user_id), (console_type, provider), TTL."""
    able = capabilities or Capabilities()
    indexes = [
        IndexModel([("vm_id", ASCENDING)], name=VM_ID_INDEX, unique=able.unique),
        IndexModel([("status", ASCENDING), ("user_id", ASCENDING)], name=STATUS_USER_INDEX),
        IndexModel(
            [("console_type", ASCENDING), ("provider", ASCENDING)], name=CONSOLE_PROVIDER_INDEX
        ),
    ]
    if able.expiry_by_server:
        # Only terminated VMs expire: the partial filter keeps live documents forever.
        indexes.append(
            IndexModel(
                [("created_at", ASCENDING)],
                name=TTL_INDEX,
                expireAfterSeconds=retention_seconds,
                partialFilterExpression={"status": VMStatus.TERMINATED.value},
            )
        )
    return indexes


def config_indexes(capabilities: Capabilities | None = None) -> list[IndexModel]:
    """`emulator_configs`: one document per console."""
    unique = (capabilities or Capabilities()).unique
    return [IndexModel([("console_type", ASCENDING)], name=CONSOLE_TYPE_INDEX, unique=unique)]


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
            # The server lacks this kind of index although the probe passed: the mirror
            # degrades (see purge.py) instead of failing.
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
    database: AsyncDatabase[dict[str, Any]],
    retention_seconds: int,
    capabilities: Capabilities | None = None,
) -> IndexReport:
    """Create every index of both collections the server can hold; safe on every start."""
    report = IndexReport()
    if capabilities is not None and not capabilities.expiry_by_server:
        report.missing.append(TTL_INDEX)
    for index in vm_indexes(retention_seconds, capabilities):
        await _ensure_one(database[VM_COLLECTION], index, report)
    for index in config_indexes(capabilities):
        await _ensure_one(database[EMULATOR_CONFIG_COLLECTION], index, report)
    return report
