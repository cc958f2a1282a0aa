"""Selection with I/O: transient offer failures are retried before falling back."""

import pytest

from gamevm.models import CloudProvider, EmulatorConfigSpec, GameVMSpec, GpuTier
from gamevm.providers.base import ErrorReason, Offer, OfferRequest, ProviderError
from gamevm.services.placement import ProviderSelector

CONFIG = EmulatorConfigSpec.model_validate(
    {
        "consoleType": "switch",
        "preferredProviders": [
            {"provider": "tensordock", "priority": 1},
            {"provider": "cloudypad_gcp", "priority": 2},
        ],
        "defaultPreset": "premium",
        "minCpu": 8,
        "minRamGb": 16,
        "requiresGpu": True,
        "maxSessionHours": 4,
    }
)
SPEC = GameVMSpec.model_validate({"consoleType": "switch"})


class OffersOrError:
    def __init__(self, name: CloudProvider, error: ProviderError | None = None) -> None:
        self.name = name
        self.error = error

    async def offers(self, request: OfferRequest) -> list[Offer]:
        if self.error is not None:
            raise self.error
        return [
            Offer(
                provider=self.name,
                region="r",
                placement_id=f"{self.name}-p",
                location_label="X",
                latitude=0.0,
                longitude=0.0,
                price_per_hour=0.5,
                vcpu=8,
                ram_gb=16,
                gpu_tier=GpuTier.HIGH_END,
            )
        ]


def _selector(error: ProviderError) -> ProviderSelector:
    providers = {
        CloudProvider.TENSORDOCK: OffersOrError(CloudProvider.TENSORDOCK, error),
        CloudProvider.CLOUDYPAD_GCP: OffersOrError(CloudProvider.CLOUDYPAD_GCP),
    }
    return ProviderSelector(providers)  # type: ignore[arg-type]


async def test_transient_failure_of_preferred_provider_is_retried() -> None:
    busy = ProviderError(ErrorReason.RATE_LIMITED, "429", retryable=True)
    with pytest.raises(ProviderError) as raised:
        await _selector(busy).select(SPEC, CONFIG, frozenset())
    assert raised.value is busy


async def test_after_retries_the_selection_falls_back() -> None:
    busy = ProviderError(ErrorReason.RATE_LIMITED, "429", retryable=True)
    selection = await _selector(busy).select(SPEC, CONFIG, frozenset(), tolerate_unavailable=True)
    assert selection.chosen is not None
    assert selection.chosen.provider is CloudProvider.CLOUDYPAD_GCP


async def test_permanent_failure_falls_back_at_once() -> None:
    denied = ProviderError(ErrorReason.UNAUTHORIZED, "401", retryable=False)
    selection = await _selector(denied).select(SPEC, CONFIG, frozenset())
    assert selection.chosen is not None
    assert selection.chosen.provider is CloudProvider.CLOUDYPAD_GCP
    assert any("ProviderUnavailable" in c.reason for c in selection.candidates)
