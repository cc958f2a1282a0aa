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


class ShapedOffers:
    """One hostnode selling a retro shape (no GPU) and a premium shape (high-end GPU)."""

    name = CloudProvider.TENSORDOCK

    def __init__(self) -> None:
        self.calls = 0

    async def offers(self, request: OfferRequest) -> list[Offer]:
        self.calls += 1
        premium = request.resources.gpu is not GpuTier.NONE
        return [
            Offer(
                provider=self.name,
                region="r",
                placement_id="hn-1",
                location_label="X",
                latitude=0.0,
                longitude=0.0,
                price_per_hour=1.5 if premium else 0.1,
                vcpu=request.resources.vcpu,
                ram_gb=request.resources.ram_gb,
                gpu_tier=GpuTier.HIGH_END if premium else GpuTier.NONE,
                gpu_model="rtx4090" if premium else None,
            )
        ]


async def test_cached_offer_is_keyed_by_what_sets_its_price() -> None:
    provider = ShapedOffers()
    selector = ProviderSelector({CloudProvider.TENSORDOCK: provider})  # type: ignore[dict-item]
    premium_cfg = CONFIG.model_copy(update={"preferred_providers": CONFIG.preferred_providers[:1]})
    retro_cfg = EmulatorConfigSpec.model_validate(
        {
            "consoleType": "nes",
            "preferredProviders": [{"provider": "tensordock", "priority": 1}],
            "defaultPreset": "retro",
            "costPerHourLimit": 0.2,
            "minCpu": 2,
            "minRamGb": 4,
            "requiresGpu": False,
            "maxSessionHours": 4,
        }
    )
    retro_spec = GameVMSpec.model_validate({"consoleType": "nes"})
    chosen = await selector.select(SPEC, premium_cfg, frozenset())
    assert chosen.chosen is not None
    assert chosen.chosen.price_per_hour == 1.5
    # The retro VM's create asks for the same placement: not the premium VM's offer.
    offer = await selector.offer_for(retro_spec, retro_cfg, "tensordock", "hn-1", None)
    assert offer is not None
    assert offer.price_per_hour == 0.1
    assert offer.gpu_model is None
    # The premium VM's own create is served from the cache (no second listing).
    calls = provider.calls
    again = await selector.offer_for(SPEC, premium_cfg, "tensordock", "hn-1", "rtx4090")
    assert again is chosen.chosen
    assert provider.calls == calls
