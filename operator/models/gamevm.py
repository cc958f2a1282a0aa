"""The GameVM resource: the seed's VMCreateRequest as spec, lifecycle as status."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from gamevm.models.base import SpecModel, StatusModel
from gamevm.models.conditions import Condition
from gamevm.models.enums import (
    CloudProvider,
    ConsoleType,
    DeletionPolicy,
    RunStrategy,
    VMPreset,
    VMStatus,
)
from gamevm.models.location import GeoLocation
from gamevm.models.names import SSH_PORT, WOLF_PORT

DEFAULT_AUTO_STOP_TIMEOUT = 900
MAX_AUTO_STOP_TIMEOUT = 7 * 24 * 3600

GameId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$"),
]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class VMCreateRequest(SpecModel):
    """The seed's request to create a VM, field for field."""

    console_type: ConsoleType = Field(
        description="Target console for emulation. Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "consoleType is immutable"}
            ]
        },
    )
    game_id: GameId | None = Field(
        default=None,
        description=(
            "Specific game identifier for auto-optimization: a matching EmulatorConfig "
            "gameOverrides entry raises the preset. Lowercase letters, digits, '.', '_', '-'."
        ),
    )
    provider: CloudProvider | None = Field(
        default=None, description="Cloud provider preference; auto-selected when unset."
    )
    auto_stop_timeout: int = Field(
        default=DEFAULT_AUTO_STOP_TIMEOUT,
        gt=0,
        le=MAX_AUTO_STOP_TIMEOUT,
        description="Seconds without player activity before the VM is stopped (default 900).",
    )
    user_id: UserId | None = Field(default=None, description="User identifier for VM ownership.")
    user_location: GeoLocation | None = Field(
        default=None, description="Player GPS coordinates, used to pick the nearest placement."
    )


class GameVMSpec(VMCreateRequest):
    """Desired state of a GameVM: the seed's request plus power and deletion policy."""

    run_strategy: RunStrategy = Field(
        default=RunStrategy.MANUAL,
        description=(
            "Always: keep running, never auto-stop. Manual (default): start on create, "
            "auto-stop when idle, start/stop via the gamevm.dev/power-request annotation. "
            "Halted: keep stopped."
        ),
    )
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.DELETE,
        description="Delete (default): terminate the instance on delete. Orphan: leave it.",
    )


class CandidateDecision(StatusModel):
    """One provider placement considered during selection, and its verdict."""

    provider: CloudProvider = Field(description="Provider of the candidate.")
    region: str | None = Field(default=None, description="Region, zone or hostnode location.")
    preset: VMPreset | None = Field(default=None, description="Preset asked of this provider.")
    cost_per_hour: float | None = Field(default=None, description="Offer price, USD per hour.")
    distance_km: float | None = Field(default=None, description="Distance to the player.")
    accepted: bool = Field(default=False, description="Whether this candidate was eligible.")
    reason: str = Field(default="", description="Why it was rejected, or 'Eligible'.")


class ProviderDecision(StatusModel):
    """Why the operator placed the VM where it did."""

    chosen_provider: CloudProvider | None = Field(default=None, description="Provider chosen.")
    chosen_region: str | None = Field(default=None, description="Region or hostnode chosen.")
    chosen_placement: str | None = Field(
        default=None, description="Provider placement id (hostnode, zone) the create targets."
    )
    chosen_gpu_model: str | None = Field(
        default=None, description="GPU model of the chosen offer (part of what sets its price)."
    )
    failed_placements: list[str] = Field(
        default_factory=list,
        description="'provider/placement' pairs whose create failed permanently (skipped).",
    )
    candidates: list[CandidateDecision] = Field(
        default_factory=list, description="Every candidate considered, in order, with verdicts."
    )
    decided_at: datetime | None = Field(default=None, description="When the decision was made.")


class ConfigurationStatus(StatusModel):
    """What the VM reported after its cloud-init configuration (TensorDock VMs)."""

    reported_at: datetime | None = Field(default=None, description="When the report came.")
    ready: bool = Field(default=False, description="Configuration finished and started Wolf.")
    games_mounted: bool = Field(default=False, description="The game library is mounted.")
    message: str | None = Field(default=None, description="The VM's own summary.")
    address: str | None = Field(
        default=None,
        description=(
            "Public address the report came from (its connection, or a trusted proxy's "
            "X-Forwarded-For); where Wolf is probed when the provider's list has no IP."
        ),
    )


class GameVMStatus(StatusModel):
    """Observed state of a GameVM, written only by the operator."""

    phase: VMStatus | None = Field(default=None, description="Lifecycle phase (seed VMStatus).")
    vm_id: str | None = Field(default=None, description="VM identifier (= metadata.uid).")
    preset: VMPreset | None = Field(default=None, description="Preset provisioned.")
    provider: CloudProvider | None = Field(default=None, description="Provider provisioning it.")
    region: str | None = Field(default=None, description="Region, zone or hostnode location.")
    game_id: str | None = Field(default=None, description="spec.gameId the VM was sized for.")
    provider_instance_id: str | None = Field(
        default=None, description="Provider's own instance identifier."
    )
    instance_name: str | None = Field(
        default=None, description="Deterministic instance name at the provider (from the uid)."
    )
    ip_address: str | None = Field(
        default=None,
        description=(
            "Public IP address (TensorDock: from the VM's configuration report, or the "
            "provider's when the report has none)."
        ),
    )
    wolf_port: int = Field(default=WOLF_PORT, description="Wolf streaming (control) port.")
    ssh_port: int = Field(default=SSH_PORT, description="SSH port.")
    cost_per_hour: float | None = Field(default=None, description="Hourly price, USD.")
    started_at: datetime | None = Field(
        default=None,
        description=(
            "When the instance was last requested or powered on: the session (and its "
            "maxSessionHours) counts from here."
        ),
    )
    provisioning_since: datetime | None = Field(
        default=None,
        description=(
            "When the VM last entered creating or configuring: maxProvisioningMinutes counts "
            "from here (cleared once running)."
        ),
    )
    last_activity: datetime | None = Field(default=None, description="Last player activity.")
    last_moonlight_connection: datetime | None = Field(
        default=None, description="Last time Wolf reported a Moonlight stream."
    )
    gaming_environment_ready: bool = Field(
        default=False,
        description="The VM is configured (reported, or by CloudyPad) and Wolf answers.",
    )
    cloudypad_configured: bool = Field(
        default=False, description="CloudyPad configured the VM (false for cloud-init VMs)."
    )
    games_mounted: bool = Field(
        default=False, description="The VM reported the game library mounted."
    )
    configuration: ConfigurationStatus | None = Field(
        default=None, description="The VM's configuration report (cloud-init VMs)."
    )
    access_secret_name: str | None = Field(
        default=None, description="Secret holding the SSH key pair and heartbeat token."
    )
    access_key_id: str | None = Field(
        default=None,
        description=(
            "Id of the operator's master key this VM's access material derives from; set "
            "when the operator created the access Secret (unset: not created yet)."
        ),
    )
    attempted_providers: list[CloudProvider] = Field(
        default_factory=list,
        description="Providers a create was sent to; all are cleaned up on delete.",
    )
    provider_metadata: dict[str, Any] = Field(
        default_factory=dict, description="Provider-specific, non-secret details."
    )
    decision: ProviderDecision | None = Field(default=None, description="Provider decision.")
    stop_reason: str | None = Field(default=None, description="Why the VM was last stopped.")
    orphaned: bool | None = Field(
        default=None,
        description="The GameVM was deleted with deletionPolicy Orphan: the instance is left.",
    )
    message: str | None = Field(default=None, description="Latest human-readable status.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Provisioned, …")
    observed_generation: int | None = Field(
        default=None, description="metadata.generation last reconciled."
    )
