"""The provider budget over the real TensorDock adapter and its v2 simulator (loopback HTTP).

What the simulator counts is what TensorDock would: one GET /instances observes every VM,
creates send no per-VM lookup, and the simulator's own 429 slows the adapter's shared
limiter.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest

from gamevm.models import PRESET_RESOURCES, CloudProvider, VMPreset
from gamevm.providers.base import CreateSpec, InstanceState, OfferRequest
from gamevm.providers.budget import BudgetedProvider, BudgetSettings
from gamevm.providers.credentials import TENSORDOCK_TOKEN
from gamevm.providers.registry import build_provider
from gamevm.providers.tensordock.adapter import TensorDockProvider
from gamevm.settings import Settings
from tests.fixtures.simulators import TensorDockSimHandle

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIContractTestKey test"
N = 12


def adapter(sim: TensorDockSimHandle, per_minute: int = 100_000) -> TensorDockProvider:
    settings = Settings.model_validate(
        {
            "tensordock_api_url": sim.base_url,
            "http_timeout": 5.0,
            "http_retries": 2,
            "http_backoff_base": 0.01,
            "http_backoff_max": 5.0,
            "tensordock_requests_per_minute": per_minute,
        }
    )
    provider = build_provider(CloudProvider.TENSORDOCK, settings, {TENSORDOCK_TOKEN: sim.token})
    assert isinstance(provider, TensorDockProvider)
    return provider


@pytest.fixture
async def budget(tensordock_sim: TensorDockSimHandle) -> AsyncIterator[BudgetedProvider]:
    wrapped = BudgetedProvider(adapter(tensordock_sim), BudgetSettings(list_interval=0.5))
    yield wrapped
    await wrapped.aclose()


async def requests(sim: TensorDockSimHandle) -> dict[str, int]:
    stats = await sim.stats()
    return {str(k): int(v) for k, v in stats["requests"].items()}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}


async def test_n_vms_cost_one_offer_listing_and_one_post_each_then_one_list(
    budget: BudgetedProvider, tensordock_sim: TensorDockSimHandle
) -> None:
    before = await requests(tensordock_sim)
    request = OfferRequest(preset=VMPreset.RETRO, resources=PRESET_RESOURCES[VMPreset.RETRO])
    offers = await asyncio.gather(*(budget.offers(request) for _ in range(N)))
    offer = min(
        (o for o in offers[0] if o.available > 0 and o.location_label.startswith("Dallas")),
        key=lambda o: o.price_per_hour,
    )
    specs = [
        CreateSpec(
            name=f"gvm-budget-{i}", preset=VMPreset.RETRO, offer=offer, ssh_public_key=SSH_KEY
        )
        for i in range(N)
    ]
    created = await asyncio.gather(*(budget.create(s) for s in specs))
    placed = delta(await requests(tensordock_sim), before)
    assert placed == {
        "GET /locations": 1,
        "GET /hostnodes": 1,
        "GET /instances": 1,  # the one list that proves every name absent
        "POST /instances": N,
    }
    # Wait until the simulator reports them running, then observe all N.
    await asyncio.sleep(0.6)
    for _ in range(50):
        observed = await asyncio.gather(*(budget.observe(c.instance_id) for c in created))
        if all(o is not None and o.state is InstanceState.RUNNING for o in observed):
            break
        await asyncio.sleep(0.6)
    assert all(o is not None and o.ip_address for o in observed)
    mid = await requests(tensordock_sim)
    await asyncio.sleep(0.6)
    for _ in range(3):
        await asyncio.gather(*(budget.observe(c.instance_id) for c in created))
    # Running VMs with known IPs: one list for all of them, no per-VM GET.
    assert delta(await requests(tensordock_sim), mid) == {"GET /instances": 1}
    details = delta(mid, before).get("GET /instances/{id}", 0)
    assert details == N  # the IP, once per VM (the list carries none)


async def test_simulator_429_slows_the_shared_limiter(
    tensordock_sim: TensorDockSimHandle,
) -> None:
    await tensordock_sim.set_rate_limit(3)
    provider = adapter(tensordock_sim)
    try:
        await asyncio.gather(
            *(provider.observe(f"missing-{i}") for i in range(6)), return_exceptions=True
        )
        bucket = provider._client._bucket
        assert bucket.slowdowns >= 1
        assert bucket.rate < bucket.nominal_rate
        assert bucket.delay_for_next() > 0  # every caller now waits, not one VM
    finally:
        await provider.aclose()
        await tensordock_sim.set_rate_limit(100_000)
