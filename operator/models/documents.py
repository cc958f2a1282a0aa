"""The seed's MongoDB documents and API responses, under the seed's snake_case names.

Additions to the seed, all documented in the README: `game_id`, `namespace`, `name`,
`access_secret_name`, `started_at` and `source_version` on VMDocument; `game_overrides`,
`game_library` (source, url, endpoint, region, credentials_secret_ref{name}, mount_path;
never credential values) and `source_version` on EmulatorConfigDocument.
`ssh_private_key` stays in the schema for fidelity but the operator always leaves it
null (keys live in Kubernetes Secrets).
`source_version` is the object's metadata.resourceVersion, opaque: compared for equality
only (the mirror orders writes by when the watch delivered them, see mirror/ordering.py).
"""

from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gamevm.models.enums import CloudProvider, ConsoleType, VMPreset, VMStatus
from gamevm.models.names import SSH_PORT, WOLF_PORT

VM_COLLECTION: Final = "vm_instances"
EMULATOR_CONFIG_COLLECTION: Final = "emulator_configs"


def utcnow() -> datetime:
    """Timezone-aware now, the seed's `utcnow` default."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are UTC: PyMongo returns them naive unless the client is tz_aware."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _validate_location(value: dict[str, float] | None) -> dict[str, float] | None:
    if value is None:
        return None
    lat, lon = value.get("latitude"), value.get("longitude")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError("Invalid GPS coordinates")
    return value


class Document(BaseModel):
    """A Mongo document: snake_case names, unknown keys (like `_id`) ignored."""

    model_config = ConfigDict(extra="ignore")


class VMDocument(Document):
    """One VM in `vm_instances`."""

    # A refused `ssh_private_key` must not be echoed into a logged ValidationError.
    model_config = ConfigDict(hide_input_in_errors=True)

    vm_id: str
    status: VMStatus
    preset: VMPreset
    console_type: ConsoleType
    provider: CloudProvider
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    ip_address: str | None = None
    wolf_port: int = WOLF_PORT
    ssh_port: int = SSH_PORT
    ssh_private_key: str | None = None
    auto_stop_timeout: int = Field(default=900, gt=0)
    user_id: str | None = None
    provider_instance_id: str | None = None
    provider_metadata: dict[str, Any] = Field(default_factory=dict)
    gaming_environment_ready: bool = False
    cloudypad_configured: bool = False
    games_mounted: bool = False
    last_activity: datetime | None = None
    last_moonlight_connection: datetime | None = None
    user_location: dict[str, float] | None = None
    # Additions (see module docstring).
    game_id: str | None = None
    namespace: str | None = None
    name: str | None = None
    access_secret_name: str | None = None
    started_at: datetime | None = None
    source_version: str = ""

    _check_location = field_validator("user_location")(_validate_location)

    @field_validator("ssh_private_key")
    @classmethod
    def _never_store_keys(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError("ssh_private_key is never stored; keys live in Kubernetes Secrets")


class EmulatorConfigDocument(Document):
    """One console's configuration in `emulator_configs`."""

    console_type: ConsoleType
    preferred_providers: list[dict[str, Any]] = Field(default_factory=list)
    default_preset: VMPreset
    cost_per_hour_limit: float | None = Field(default=None, ge=0)
    min_cpu: int
    min_ram_gb: int
    requires_gpu: bool
    max_session_hours: int
    # Additions (see module docstring).
    game_overrides: list[dict[str, Any]] = Field(default_factory=list)
    game_library: dict[str, Any] | None = None
    source_version: str = ""


class VMResponse(BaseModel):
    """API response for one VM (subset of VMDocument)."""

    vm_id: str
    status: VMStatus
    preset: VMPreset
    console_type: ConsoleType
    provider: CloudProvider
    created_at: datetime
    updated_at: datetime
    ip_address: str | None = None
    wolf_port: int = WOLF_PORT
    ssh_port: int = SSH_PORT
    auto_stop_timeout: int
    gaming_environment_ready: bool = False
    last_activity: datetime | None = None

    @classmethod
    def from_document(cls, doc: VMDocument) -> "VMResponse":
        """The response view of a stored document."""
        return cls.model_validate(doc.model_dump(include=set(cls.model_fields)))


class VMStatusResponse(BaseModel):
    """Lightweight status-only response."""

    vm_id: str
    status: VMStatus
    ip_address: str | None = None
    uptime_seconds: int | None = None
    last_activity: datetime | None = None
    gaming_environment_ready: bool = False

    @classmethod
    def from_document(cls, doc: VMDocument, now: datetime | None = None) -> "VMStatusResponse":
        """Status view; uptime counts from the session start while the VM runs."""
        uptime: int | None = None
        if doc.status is VMStatus.RUNNING and doc.started_at is not None:
            elapsed = as_utc(now or utcnow()) - as_utc(doc.started_at)
            uptime = max(0, int(elapsed.total_seconds()))
        return cls(
            vm_id=doc.vm_id,
            status=doc.status,
            ip_address=doc.ip_address,
            uptime_seconds=uptime,
            last_activity=doc.last_activity,
            gaming_environment_ready=doc.gaming_environment_ready,
        )
