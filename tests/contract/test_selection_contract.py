"""Selection end to end: real adapters fetch offers from the simulators, then `choose`."""

import asyncio
from collections.abc import Mapping

from gamevm.models import CloudProvider, EmulatorConfigSpec, GameVMSpec
from gamevm.providers.base import Offer, OfferRequest, Provider, ProviderError
from gamevm.providers.registry import build_providers, close_providers
from gamevm.services.selection import SelectionResult, choose, plan_selection
from gamevm.settings import Settings
from tests.contract.test_cloudypad_contract import secret_data
from tests.fixtures.simulators import CloudyPadSimHandle, TensorDockSimHandle


def switch_config() -> EmulatorConfigSpec:
    return EmulatorConfigSpec.model_validate(
        {
            "console_type": "switch",
            "preferred_providers": [
                {"provider": "cloudypad_gcp", "priority": 1, "cost_per_hour_limit": 1.3},
                {"provider": "tensordock", "priority": 2},
                {"provider": "cloudypad_aws", "priority": 3, "cost_per_hour_limit": 0.6},
                {"provider": "cloudypad_azure", "priority": 4, "enabled": False},
            ],
            "default_preset": "premium",
            "min_cpu": 4,
            "min_ram_gb": 8,
            "requires_gpu": True,
            "max_session_hours": 8,
        }
    )


async def select(
    providers: Mapping[CloudProvider, Provider], config: EmulatorConfigSpec, spec: GameVMSpec
) -> SelectionResult:
    plan = plan_selection(config, spec)

    async def fetch(provider: CloudProvider, request: OfferRequest) -> list[Offer] | ProviderError:
        try:
            return await providers[provider].offers(request)
        except ProviderError as exc:
            return exc

    fetched = await asyncio.gather(*(fetch(q.provider, q.request) for q in plan.queries))
    offers = {
        q.provider: r for q, r in zip(plan.queries, fetched, strict=True) if isinstance(r, list)
    }
    errors = {
        q.provider: r
        for q, r in zip(plan.queries, fetched, strict=True)
        if isinstance(r, ProviderError)
    }
    return choose(plan, offers, errors)


async def test_selection_over_simulated_providers(
    tensordock_sim: TensorDockSimHandle, cloudypad_sim: CloudyPadSimHandle
) -> None:
    settings = Settings.model_validate(
        {
            "tensordock_api_url": tensordock_sim.base_url,
            "cloudypad_cli": str(cloudypad_sim.executable),
            "cloudypad_home": str(cloudypad_sim.home),
        }
    )
    credentials = {**secret_data(cloudypad_sim), "tensordock-token": tensordock_sim.token}
    providers = build_providers(settings, credentials)
    try:
        tokyo = await select(
            providers,
            switch_config(),
            GameVMSpec.model_validate(
                {
                    "console_type": "switch",
                    "user_location": {"latitude": 35.68, "longitude": 139.69},
                }
            ),
        )
        assert tokyo.require().offer.provider is CloudProvider.CLOUDYPAD_GCP
        assert tokyo.require().offer.region == "asia-northeast1"
        reasons = {d.provider: d.reason for d in tokyo.decisions if not d.accepted}
        assert reasons[CloudProvider.CLOUDYPAD_AWS] == "OverCostLimit: 1.21 > 0.60 USD/h"
        assert reasons[CloudProvider.CLOUDYPAD_AZURE] == "Disabled"

        dallas = await select(
            providers,
            switch_config(),
            GameVMSpec.model_validate(
                {
                    "console_type": "switch",
                    "provider": "tensordock",
                    "user_location": {"latitude": 32.9, "longitude": -97.0},
                }
            ),
        )
        chosen = dallas.require()
        assert chosen.offer.provider is CloudProvider.TENSORDOCK
        assert chosen.offer.location_label.startswith("Dallas")
    finally:
        await close_providers(providers)
