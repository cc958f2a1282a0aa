"""Pure functions: a GameVM or EmulatorConfig object (kopf body, LIST item) -> its document.

Choices the seed leaves open:
- A document exists once the VM has a provider (``status.provider``, else the user's
  ``spec.provider``): the seed types ``provider`` as required and creates the document only
  after provider selection, and dashboards built on the seed's models would fail on a null.
  Before that, ``vm_document_from`` returns None (``Mirror.enqueue_vm`` accepts None and
  does nothing); the GameVM is still visible in ``kubectl get gamevms``.
- ``preset`` is ``status.preset``, else the console's default preset (the seed's table):
  the size the VM gets unless a game override raises it, corrected as soon as status says.
- ``status`` is ``status.phase``, ``creating`` before the first status write (the seed's
  initial status).
- ``updated_at`` is the time of the object's latest write (the newest managedFields /
  condition / deletion time), so the same object version always gives the same document.
- ``ssh_private_key`` is always None; ``access_secret_name`` names the Secret instead.
- ``provider_metadata`` is ``status.providerMetadata`` plus the placement (region, hourly
  cost, instance name), minus any key that looks like a credential.
"""

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from gamevm.mirror.documents import ORPHANED
from gamevm.models.documents import EmulatorConfigDocument, VMDocument
from gamevm.models.emulator_config import EmulatorConfigSpec, ProviderPreference
from gamevm.models.enums import CloudProvider, VMStatus
from gamevm.models.gamevm import GameVMSpec, GameVMStatus
from gamevm.models.presets import CONSOLE_DEFAULT_PRESET

_DATETIME = TypeAdapter(datetime)
_SECRET_KEY = re.compile(
    r"(token|secret|passw|private[_-]?key|credential|api[_-]?key|authorization|bearer)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


class MappingError(ValueError):
    """The object lacks what every document needs (uid, resourceVersion, spec)."""


def _section(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = body.get(key)
    return value if isinstance(value, Mapping) else {}


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    parsed = _DATETIME.validate_python(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _source_version(metadata: Mapping[str, Any]) -> str:
    """The resourceVersion, kept opaque: Kubernetes allows only equality checks on it."""
    version = metadata.get("resourceVersion")
    if not isinstance(version, str) or not version:
        raise MappingError("metadata.resourceVersion missing")
    return version


def _known_fields(
    model: type[GameVMSpec | EmulatorConfigSpec], raw: Mapping[str, Any]
) -> dict[str, Any]:
    """Drop keys the model does not know (a newer CRD version), keep validation of the rest."""
    names = {info.alias or name for name, info in model.model_fields.items()} | set(
        model.model_fields
    )
    return {key: value for key, value in raw.items() if key in names}


def _last_write(metadata: Mapping[str, Any], status: GameVMStatus) -> datetime:
    times: list[datetime] = []
    for key in ("creationTimestamp", "deletionTimestamp"):
        moment = _parse_time(metadata.get(key))
        if moment is not None:
            times.append(moment)
    for entry in metadata.get("managedFields") or []:
        if isinstance(entry, Mapping):
            moment = _parse_time(entry.get("time"))
            if moment is not None:
                times.append(moment)
    times.extend(condition.last_transition_time for condition in status.conditions)
    if not times:
        raise MappingError("metadata.creationTimestamp missing")
    return max(times)


def scrub_metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    """Provider details without credential-looking keys or private-key values (recursive)."""
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if _SECRET_KEY.search(str(key)):
            continue
        if isinstance(value, Mapping):
            clean[str(key)] = scrub_metadata(value)
        elif isinstance(value, str) and _SECRET_VALUE.search(value):
            continue
        else:
            clean[str(key)] = value
    return clean


def _provider_metadata(status: GameVMStatus) -> dict[str, Any]:
    placement = {
        "region": status.region,
        "cost_per_hour": status.cost_per_hour,
        "instance_name": status.instance_name,
    }
    merged = {**status.provider_metadata}
    merged.update({key: value for key, value in placement.items() if value is not None})
    return scrub_metadata(merged)


def vm_document_from(body: Mapping[str, Any]) -> VMDocument | None:
    """The ``vm_instances`` document of a GameVM; None until it has a provider (see above)."""
    metadata = _section(body, "metadata")
    uid = metadata.get("uid")
    if not uid:
        raise MappingError("metadata.uid missing")
    spec = GameVMSpec.model_validate(_known_fields(GameVMSpec, _section(body, "spec")))
    status = GameVMStatus.model_validate(dict(_section(body, "status")))
    provider: CloudProvider | None = status.provider or spec.provider
    if provider is None:
        return None
    created_at = _parse_time(metadata.get("creationTimestamp"))
    if created_at is None:
        raise MappingError("metadata.creationTimestamp missing")
    location = spec.user_location
    return VMDocument(
        vm_id=str(uid),
        status=status.phase or VMStatus.CREATING,
        preset=status.preset or CONSOLE_DEFAULT_PRESET[spec.console_type],
        console_type=spec.console_type,
        provider=provider,
        created_at=created_at,
        updated_at=_last_write(metadata, status),
        ip_address=status.ip_address,
        wolf_port=status.wolf_port,
        ssh_port=status.ssh_port,
        ssh_private_key=None,
        auto_stop_timeout=spec.auto_stop_timeout,
        user_id=spec.user_id,
        provider_instance_id=status.provider_instance_id,
        provider_metadata=_provider_metadata(status),
        gaming_environment_ready=status.gaming_environment_ready,
        cloudypad_configured=status.cloudypad_configured,
        games_mounted=status.games_mounted,
        last_activity=status.last_activity,
        last_moonlight_connection=status.last_moonlight_connection,
        user_location=(
            {"latitude": location.latitude, "longitude": location.longitude} if location else None
        ),
        game_id=spec.game_id,
        namespace=metadata.get("namespace"),
        name=metadata.get("name"),
        access_secret_name=status.access_secret_name,
        started_at=status.started_at,
        source_version=_source_version(metadata),
    )


def terminated_vm_document_from(body: Mapping[str, Any]) -> VMDocument | None:
    """The document of a deleted GameVM: status ``terminated``, kept until the TTL.

    ``updated_at`` is the deletion time when the body carries one, else the last write, so
    the same body always gives the same document.
    """
    document = vm_document_from(body)
    if document is None:
        return None
    if _section(body, "status").get("orphaned") is True:
        # deletionPolicy Orphan (allowed by the admin): the instance lives on and may bill,
        # so its document keeps its phase (no TTL purge) and says it is orphaned.
        metadata = {**document.provider_metadata, ORPHANED: True}
        return document.model_copy(update={"provider_metadata": metadata})
    deleted_at = _parse_time(_section(body, "metadata").get("deletionTimestamp"))
    updated_at = max(document.updated_at, deleted_at) if deleted_at else document.updated_at
    return document.model_copy(update={"status": VMStatus.TERMINATED, "updated_at": updated_at})


def _provider_entry(entry: ProviderPreference) -> dict[str, Any]:
    """One entry in the seed's format; ``regions`` only when restricted, as in its example."""
    values: dict[str, Any] = {
        "provider": entry.provider.value,
        "priority": entry.priority,
        "enabled": entry.enabled,
        "preset_override": entry.preset_override.value if entry.preset_override else None,
        "cost_per_hour_limit": entry.cost_per_hour_limit,
    }
    if entry.regions is not None:
        values["regions"] = list(entry.regions)
    return values


def config_document_from(body: Mapping[str, Any]) -> EmulatorConfigDocument:
    """The ``emulator_configs`` document of an EmulatorConfig, in the seed's snake_case format."""
    metadata = _section(body, "metadata")
    spec = EmulatorConfigSpec.model_validate(
        _known_fields(EmulatorConfigSpec, _section(body, "spec"))
    )
    return EmulatorConfigDocument(
        console_type=spec.console_type,
        preferred_providers=[_provider_entry(entry) for entry in spec.providers_by_priority()],
        default_preset=spec.default_preset,
        cost_per_hour_limit=spec.cost_per_hour_limit,
        min_cpu=spec.min_cpu,
        min_ram_gb=spec.min_ram_gb,
        requires_gpu=spec.requires_gpu,
        max_session_hours=spec.max_session_hours,
        game_overrides=[
            {"game_id": entry.game_id, "preset": entry.preset.value}
            for entry in spec.game_overrides
        ],
        # snake_case like the seed's fields; the Secret is named, its values never copied.
        game_library=spec.game_library.model_dump(mode="json", by_alias=False)
        if spec.game_library
        else None,
        source_version=_source_version(metadata),
    )
