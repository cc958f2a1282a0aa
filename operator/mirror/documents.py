"""Documents as stored: plain BSON-ready values, compared the way MongoDB round-trips them."""

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel

from gamevm.mirror.ordering import SEQ_FIELD
from gamevm.models.documents import EmulatorConfigDocument, VMDocument

ORPHANED = "orphaned"
"""provider_metadata key of a deleted GameVM whose instance was left running (Orphan)."""

_BOOKKEEPING = frozenset({"_id", SEQ_FIELD})


def bson_value(value: Any) -> Any:
    """Enums as their values, datetimes in UTC at BSON's millisecond precision, recursively."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        aware = aware.astimezone(UTC)
        return aware.replace(microsecond=aware.microsecond // 1000 * 1000)
    if isinstance(value, Mapping):
        return {str(key): bson_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [bson_value(item) for item in value]
    return value


def stored_fields(document: BaseModel) -> dict[str, Any]:
    """Every model field under its seed name, as MongoDB will hand it back."""
    fields: dict[str, Any] = bson_value(document.model_dump())
    return fields


def seed_content(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored document minus what is not the document's own: Mongo's `_id` and the
    mirror's delivery stamp (ordering.SEQ_FIELD)."""
    return {key: value for key, value in stored.items() if key not in _BOOKKEEPING}


def same_content(stored: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
    """Whether a stored document already holds exactly these fields (and no others)."""
    expected: dict[str, Any] = bson_value(dict(fields))
    return seed_content(stored) == expected


def vm_from_stored(stored: Mapping[str, Any]) -> VMDocument:
    """Parse a `vm_instances` document (unknown keys such as `_id` are ignored)."""
    return VMDocument.model_validate(dict(stored))


def config_from_stored(stored: Mapping[str, Any]) -> EmulatorConfigDocument:
    """Parse an `emulator_configs` document."""
    return EmulatorConfigDocument.model_validate(dict(stored))
