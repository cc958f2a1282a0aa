"""What the reconcile service needs from the outside world, as Protocols.

The handler layer implements these with the Kubernetes client; tests use plain fakes.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gamevm.models.emulator_config import EmulatorConfigSpec
from gamevm.models.enums import VMPreset
from gamevm.models.gamevm import CandidateDecision, GameVMSpec
from gamevm.providers.base import Offer
from gamevm.providers.wolf import WolfStatus
from gamevm.services.access import AccessMaterial


@dataclass(frozen=True)
class VMRef:
    """Identity of one GameVM object."""

    namespace: str
    name: str
    uid: str
    generation: int | None = None

    @property
    def key(self) -> str:
        """namespace/name, for logs and Events."""
        return f"{self.namespace}/{self.name}"


class AccessSecrets(Protocol):
    """Creates the per-VM access Secret (owned by the GameVM). Never reads Secrets."""

    async def create(self, ref: VMRef, secret_name: str, material: AccessMaterial) -> bool:
        """Create it, owned by the GameVM; False (and nothing changed) when a Secret of that
        name already exists."""
        ...


class WolfProbe(Protocol):
    """Asks Wolf's Moonlight HTTP server for /serverinfo."""

    async def probe(self, host: str, port: int) -> WolfStatus | None:
        """Wolf's status, or None when it does not answer (yet)."""
        ...


@dataclass(frozen=True)
class Selection:
    """The outcome of provider selection for one VM."""

    chosen: Offer | None
    preset: VMPreset | None
    candidates: list[CandidateDecision] = field(default_factory=list)
    summary: str = ""


class Selector(Protocol):
    """Picks a placement: offers from the providers, then the pure selection policy."""

    async def select(
        self,
        spec: GameVMSpec,
        config: EmulatorConfigSpec,
        exclude: frozenset[str],
        *,
        tolerate_unavailable: bool = False,
    ) -> Selection:
        """Best eligible offer not in `exclude` ('provider/placement' keys).

        A preferred provider whose offers failed with a retryable error raises that
        ProviderError (back off and ask again) unless `tolerate_unavailable`, when the
        selection falls back past it.
        """
        ...

    async def offer_for(
        self,
        spec: GameVMSpec,
        config: EmulatorConfigSpec,
        provider: str,
        placement: str,
        gpu_model: str | None = None,
    ) -> Offer | None:
        """The current offer for a placement chosen earlier (after a restart); the same
        preset and GPU model when the placement has several."""
        ...


ProviderCredentials = Mapping[str, str]
