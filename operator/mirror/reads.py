"""Reads for the API: one VM, VMs by owner and status, one config."""

from typing import Any, Final

from pymongo import ASCENDING
from pymongo.errors import PyMongoError

from gamevm.mirror.connection import Connection
from gamevm.mirror.documents import config_from_stored, vm_from_stored
from gamevm.mirror.errors import MirrorUnavailableError
from gamevm.models.documents import EmulatorConfigDocument, VMDocument
from gamevm.models.enums import VMStatus

LIST_LIMIT: Final = 1000


class Reader:
    """Reads raise MirrorUnavailableError when MongoDB does not answer in time."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def get_vm(self, vm_id: str) -> VMDocument | None:
        try:
            stored = await self._connection.vms.find_one({"vm_id": vm_id})
        except PyMongoError as exc:
            raise MirrorUnavailableError(str(type(exc).__name__)) from exc
        return None if stored is None else vm_from_stored(stored)

    async def list_vms(
        self, user_id: str | None = None, status: VMStatus | None = None, limit: int = LIST_LIMIT
    ) -> list[VMDocument]:
        query: dict[str, Any] = {}
        if user_id is not None:
            query["user_id"] = user_id
        if status is not None:
            query["status"] = status.value
        try:
            cursor = self._connection.vms.find(query).sort("created_at", ASCENDING).limit(limit)
            return [vm_from_stored(stored) async for stored in cursor]
        except PyMongoError as exc:
            raise MirrorUnavailableError(str(type(exc).__name__)) from exc

    async def get_config(self, console_type: str) -> EmulatorConfigDocument | None:
        try:
            stored = await self._connection.configs.find_one({"console_type": console_type})
        except PyMongoError as exc:
            raise MirrorUnavailableError(str(type(exc).__name__)) from exc
        return None if stored is None else config_from_stored(stored)
