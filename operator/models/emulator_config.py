"""The EmulatorConfig resource: the seed's EmulatorConfigDocument as a cluster-scoped spec."""

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator
from pydantic.config import JsonDict

from gamevm.models.base import SpecModel, StatusModel
from gamevm.models.conditions import Condition
from gamevm.models.enums import CloudProvider, ConsoleType, VMPreset
from gamevm.models.game_library import GameLibrary
from gamevm.models.gamevm import GameId

MAX_PROVIDERS = 16
DEFAULT_MAX_PROVISIONING_MINUTES = 30
MAX_PROVISIONING_MINUTES = 24 * 60
MAX_GAME_OVERRIDES = 256

RegionName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ProviderPreference(SpecModel):
    """One entry of `preferred_providers`, in the seed's format."""

    provider: CloudProvider = Field(description="Provider this entry configures.")
    priority: int = Field(ge=1, le=1000, description="Lower is preferred; unique per config.")
    enabled: bool = Field(default=True, description="Disabled providers are never chosen.")
    preset_override: VMPreset | None = Field(
        default=None, description="Preset to use on this provider instead of the console's."
    )
    cost_per_hour_limit: float | None = Field(
        default=None, ge=0, description="Maximum USD per hour accepted from this provider."
    )
    regions: list[RegionName] | None = Field(
        default=None,
        max_length=64,
        description="Optional region restrictions (regions, zones or hostnode location ids).",
    )


class GameOverride(SpecModel):
    """A known heavy game that needs a bigger preset than the console default."""

    game_id: GameId = Field(description="GameVM spec.gameId this entry matches.")
    preset: VMPreset = Field(description="Minimum preset for this game.")


_UNIQUE_PRIORITY: JsonDict = {
    "rule": "self.all(p, self.filter(q, q.priority == p.priority).size() == 1)",
    "message": "preferredProviders priorities must be unique",
}
_UNIQUE_PROVIDER: JsonDict = {
    "rule": "self.all(p, self.filter(q, q.provider == p.provider).size() == 1)",
    "message": "preferredProviders must list each provider at most once",
}
_ONE_ENABLED: JsonDict = {
    "rule": "self.exists(p, !has(p.enabled) || p.enabled)",
    "message": "preferredProviders needs at least one enabled provider",
}
_UNIQUE_GAME: JsonDict = {
    "rule": "self.all(g, self.filter(h, h.gameId == g.gameId).size() == 1)",
    "message": "gameOverrides gameId values must be unique",
}


class EmulatorConfigSpec(SpecModel):
    """Console-specific requirements and provider preferences (one config per console)."""

    console_type: ConsoleType = Field(
        description="Target console; must equal metadata.name.",
    )
    preferred_providers: list[ProviderPreference] = Field(
        min_length=1,
        max_length=MAX_PROVIDERS,
        description="Providers in priority order (lowest priority number first).",
        json_schema_extra={
            "x-kubernetes-validations": [_UNIQUE_PRIORITY, _UNIQUE_PROVIDER, _ONE_ENABLED]
        },
    )
    default_preset: VMPreset = Field(description="Default VM preset for this console.")
    cost_per_hour_limit: float | None = Field(
        default=None, ge=0, description="Maximum acceptable USD per hour for this console."
    )
    min_cpu: int = Field(ge=1, le=512, description="Minimum vCPU cores required.")
    min_ram_gb: int = Field(ge=1, le=4096, description="Minimum RAM in GB.")
    requires_gpu: bool = Field(description="Whether a GPU is required.")
    max_session_hours: int = Field(ge=1, le=720, description="Maximum session duration in hours.")
    max_provisioning_minutes: int = Field(
        default=DEFAULT_MAX_PROVISIONING_MINUTES,
        ge=1,
        le=MAX_PROVISIONING_MINUTES,
        description=(
            "Minutes a VM may stay creating or configuring (it bills meanwhile); past it the "
            "instance is stopped and the phase is error, reason ProvisioningTimeout."
        ),
    )
    allow_always_run_strategy: bool = Field(
        default=True,
        description=(
            "Whether GameVMs of this console may use runStrategy Always (no idle stop); "
            "when false such a GameVM is not provisioned (condition Admitted=False)."
        ),
    )
    max_session_applies_to_always: bool = Field(
        default=True,
        description=(
            "Whether maxSessionHours also stops runStrategy Always VMs (default true); "
            "a VM stopped at the cap stays off until a power-request start."
        ),
    )
    allow_orphan_deletion_policy: bool = Field(
        default=False,
        description=(
            "Whether GameVMs may use deletionPolicy Orphan (leave a billing instance behind "
            "on delete); when false such a GameVM is not provisioned and a delete still "
            "terminates its instance."
        ),
    )
    game_overrides: list[GameOverride] = Field(
        default_factory=list,
        max_length=MAX_GAME_OVERRIDES,
        description="Per-game preset raises (the seed's game_id auto-optimization).",
        json_schema_extra={"x-kubernetes-validations": [_UNIQUE_GAME]},
    )
    game_library: GameLibrary | None = Field(
        default=None,
        description="Optional read-only game library mounted on each VM while it is configured.",
    )

    # Field validators, not one model validator: the error's `loc` then names the field.
    @field_validator("preferred_providers")
    @classmethod
    def _check_providers(cls, value: list[ProviderPreference]) -> list[ProviderPreference]:
        priorities = [p.priority for p in value]
        if len(set(priorities)) != len(priorities):
            raise ValueError("preferred_providers priorities must be unique")
        providers = [p.provider for p in value]
        if len(set(providers)) != len(providers):
            raise ValueError("preferred_providers must list each provider at most once")
        if not any(p.enabled for p in value):
            raise ValueError("preferred_providers needs at least one enabled provider")
        return value

    @field_validator("game_overrides")
    @classmethod
    def _check_game_overrides(cls, value: list[GameOverride]) -> list[GameOverride]:
        games = [g.game_id for g in value]
        if len(set(games)) != len(games):
            raise ValueError("game_overrides game_id values must be unique")
        return value

    def providers_by_priority(self) -> list[ProviderPreference]:
        """Enabled and disabled entries, lowest priority number first."""
        return sorted(self.preferred_providers, key=lambda p: p.priority)


class EmulatorConfigStatus(StatusModel):
    """What the operator last observed of an EmulatorConfig."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation last accepted."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Accepted, ...")
