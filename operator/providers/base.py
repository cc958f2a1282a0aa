"""The provider Protocol (shaped like Crossplane's external client) and its value types."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from gamevm.models.enums import CloudProvider, GpuTier, VMPreset
from gamevm.models.names import WOLF_HTTP_PORT
from gamevm.models.presets import PresetResources


class ErrorReason(StrEnum):
    """CamelCase reasons a ProviderError carries; they show up in conditions and Events."""

    RATE_LIMITED = "RateLimited"
    NO_CAPACITY = "NoCapacity"
    UNAUTHORIZED = "Unauthorized"
    MISSING_CREDENTIALS = "MissingCredentials"
    BAD_RESPONSE = "BadResponse"
    TIMEOUT = "Timeout"
    SERVER_ERROR = "ServerError"
    CONNECTION_ERROR = "ConnectionError"
    INVALID_REQUEST = "InvalidRequest"
    NOT_FOUND = "NotFound"
    CONFLICT = "Conflict"
    CLI_FAILED = "CliFailed"
    UNSUPPORTED = "Unsupported"
    INSUFFICIENT_BALANCE = "InsufficientBalance"
    """The provider account cannot pay for the instance (a person must top it up)."""
    PLACEMENT_LOST = "PlacementLost"
    """A stopped instance lost its hardware (e.g. TensorDock `stoppeddisassociated` whose
    GPU was taken): it cannot start again and needs a new placement."""


class ProviderError(Exception):
    """The only error providers raise. `retryable` decides backoff vs. phase `error`."""

    def __init__(
        self,
        reason: ErrorReason,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        """Seconds the provider asked us to wait (Retry-After), when it said so."""

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class InstanceState(StrEnum):
    """Provider-neutral instance state."""

    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERROR = "error"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OfferRequest:
    """What the VM needs; providers list the placements that can host it."""

    preset: VMPreset
    resources: PresetResources
    regions: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Offer:
    """One placement a provider can create the VM in, with its hourly price."""

    provider: CloudProvider
    region: str
    """Region, zone or location id: what `regions` restrictions match."""
    placement_id: str
    """Opaque value `create` needs (hostnode id, zone, ...)."""
    location_label: str
    latitude: float
    longitude: float
    price_per_hour: float
    vcpu: int
    ram_gb: int
    gpu_tier: GpuTier
    gpu_model: str | None = None
    available: int = 1
    """How many more VMs of this shape fit; 0 means no capacity."""
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CreateSpec:
    """Everything `create` needs. `name` is deterministic (from the GameVM uid)."""

    name: str
    preset: VMPreset
    offer: Offer
    ssh_public_key: str
    tags: Mapping[str, str] = field(default_factory=dict)
    absent_checked: bool = False
    """The caller just looked `name` up in a list taken after any earlier attempt and found
    nothing: the first lookup inside `create` may be skipped (one provider request less)."""
    user_data: Mapping[str, Any] | None = field(default=None, repr=False)
    """cloud-config (cloud-init) that makes a plain image a Wolf host, for providers that
    take one (TensorDock's `cloud_init`); others configure the VM themselves. It carries
    the VM's heartbeat token: never log it."""


@dataclass(frozen=True)
class Instance:
    """What the provider says about one instance."""

    instance_id: str
    name: str
    state: InstanceState
    ip_address: str | None = None
    ports: Mapping[int, int] = field(default_factory=dict)
    """Internal port -> externally reachable port (port forwards); identity when absent."""
    region: str | None = None
    price_per_hour: float | None = None
    configured: bool = False
    """The provider finished configuring the gaming stack (CloudyPad's `configured`)."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Non-secret provider details for status and the mirror."""

    def external_port(self, internal: int) -> int:
        """The port to dial for an internal port."""
        return self.ports.get(internal, internal)

    @property
    def wolf_http_port(self) -> int:
        """Where Wolf's Moonlight HTTP server (/serverinfo) is reachable."""
        return self.external_port(WOLF_HTTP_PORT)


class Provider(Protocol):
    """One cloud. Implementations do not inherit from this; they match its shape."""

    @property
    def name(self) -> CloudProvider:
        """Which CloudProvider this adapter serves."""
        ...

    async def offers(self, request: OfferRequest) -> list[Offer]:
        """Placements able to host the request, priced per hour."""
        ...

    async def find(self, name: str) -> Instance | None:
        """The instance with this deterministic name, or None."""
        ...

    async def create(self, spec: CreateSpec) -> Instance:
        """Create the instance; if one with `spec.name` exists, return it instead."""
        ...

    async def observe(self, instance_id: str, *, address: bool = True) -> Instance | None:
        """Current state, or None when the instance no longer exists.

        `address=False`: the caller knows the instance's address from elsewhere (the VM's
        own configuration report), or does not need it yet; a provider whose shared list
        has no IP (`gamevm.providers.budget`) then skips the per-instance look for it.
        """
        ...

    async def list_instances(self) -> list[Instance] | None:
        """Every instance of the account in one call, or None when there is no such call.

        Entries carry what the list carries: TensorDock's list has name and status but no
        IP, CloudyPad's has names only (state UNKNOWN). `gamevm.providers.budget` observes
        all VMs of a provider with one such call per interval and asks `observe` only for
        what the list lacks.
        """
        ...

    async def start(self, instance_id: str) -> None:
        """Power on; already running is success."""
        ...

    async def stop(self, instance_id: str) -> None:
        """Power off; already stopped is success."""
        ...

    async def delete(self, instance_id: str) -> None:
        """Destroy; already gone is success."""
        ...

    async def aclose(self) -> None:
        """Release HTTP sessions and other resources."""
        ...
