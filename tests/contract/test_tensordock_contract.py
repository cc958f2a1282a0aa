"""The TensorDock adapter against the TensorDock v2 simulator over real HTTP (loopback).

The adapter is built by the registry from settings and Secret data, exactly as in the
operator; faults are switched through the simulator's control API.
"""

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from gamevm.models import PRESET_RESOURCES, CloudProvider, ConsoleType, VMPreset
from gamevm.providers.base import (
    CreateSpec,
    ErrorReason,
    Instance,
    InstanceState,
    Offer,
    OfferRequest,
    ProviderError,
)
from gamevm.providers.credentials import TENSORDOCK_TOKEN
from gamevm.providers.registry import build_provider
from gamevm.providers.tensordock.adapter import TensorDockProvider
from gamevm.services.userdata import WolfHostRequest, render_user_data
from gamevm.settings import Settings
from tests.fixtures.simulators import TensorDockSimHandle

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIContractTestKey test"
DALLAS = (32.78, -96.80)


def make_settings(base_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "tensordock_api_url": base_url,
        "http_timeout": 5.0,
        "http_retries": 4,
        "http_backoff_base": 0.01,
        "http_backoff_max": 5.0,
        "tensordock_requests_per_minute": 100_000,
        **overrides,
    }
    return Settings.model_validate(values)


@pytest.fixture
async def make_adapter(
    tensordock_sim: TensorDockSimHandle,
) -> AsyncIterator[object]:
    built: list[TensorDockProvider] = []

    def factory(token: str | None = None, **overrides: object) -> TensorDockProvider:
        provider = build_provider(
            CloudProvider.TENSORDOCK,
            make_settings(tensordock_sim.base_url, **overrides),
            {TENSORDOCK_TOKEN: tensordock_sim.token if token is None else token},
        )
        assert isinstance(provider, TensorDockProvider)
        built.append(provider)
        return provider

    yield factory
    for provider in built:
        await provider.aclose()


def request(preset: VMPreset = VMPreset.PREMIUM) -> OfferRequest:
    return OfferRequest(preset=preset, resources=PRESET_RESOURCES[preset])


async def dallas_offer(provider: TensorDockProvider, preset: VMPreset = VMPreset.PREMIUM) -> Offer:
    offers = await provider.offers(request(preset))
    dallas = [o for o in offers if o.location_label.startswith("Dallas") and o.available > 0]
    assert dallas, [o.location_label for o in offers]
    return min(dallas, key=lambda o: o.price_per_hour)


WOLF_USER_DATA = render_user_data(
    WolfHostRequest(
        console=ConsoleType.SWITCH,
        gpu=True,
        wolf_image="ghcr.io/games-on-whales/wolf:stable",
        report_url=None,
        heartbeat_url=None,
        token="contract-token",
    )
)


def spec(
    name: str,
    offer: Offer,
    preset: VMPreset = VMPreset.PREMIUM,
    user_data: dict[str, object] | None = WOLF_USER_DATA,
) -> CreateSpec:
    return CreateSpec(
        name=name, preset=preset, offer=offer, ssh_public_key=SSH_KEY, user_data=user_data
    )


async def wait_for(
    provider: TensorDockProvider, instance_id: str, state: InstanceState, timeout: float = 10
) -> Instance:
    deadline = time.monotonic() + timeout
    while True:
        instance = await provider.observe(instance_id)
        assert instance is not None
        if instance.state is state:
            return instance
        assert time.monotonic() < deadline, f"stuck in {instance.state}"
        await asyncio.sleep(0.05)


async def serverinfo(instance: Instance) -> str:
    url = f"http://{instance.ip_address}:{instance.wolf_http_port}/serverinfo"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.get(url) as response,
    ):
        assert response.status == 200
        return await response.text()


async def live_count(sim: TensorDockSimHandle, name: str) -> int:
    counts = (await sim.instances())["counts"]
    return int(counts["live_by_name"].get(name, 0))


async def test_offers_cover_documented_rules(make_adapter: object) -> None:
    provider = make_adapter()  # type: ignore[operator]
    premium = await provider.offers(request(VMPreset.PREMIUM))
    retro = await provider.offers(request(VMPreset.RETRO))
    assert premium
    assert retro
    labels = {o.location_label.split(",")[0] for o in premium}
    assert {"Dallas", "Tokyo", "Frankfurt"} <= labels
    # Sao Paulo's only hostnode has no dedicated IP: never offered (Wolf needs fixed ports).
    assert not any(o.location_label.startswith("Sao Paulo") for o in premium + retro)
    assert all(o.gpu_model is None for o in retro)
    # Retro is priced from the per-unit prices: 2 vCPU + 4 GB + 100 GB at Dallas (x1.0).
    dallas_cpu = min(
        (o for o in retro if o.location_label.startswith("Dallas")), key=lambda o: o.price_per_hour
    )
    assert dallas_cpu.price_per_hour == pytest.approx(2 * 0.003 + 4 * 0.002 + 100 * 0.00005)
    tokyo = next(o for o in premium if o.location_label.startswith("Tokyo"))
    assert tokyo.latitude == pytest.approx(35.68)


async def test_full_lifecycle(make_adapter: object, tensordock_sim: TensorDockSimHandle) -> None:
    provider = make_adapter()  # type: ignore[operator]
    offer = await dallas_offer(provider)
    created = await provider.create(spec("gvm-lifecycle", offer))
    assert created.name == "gvm-lifecycle"
    running = await wait_for(provider, created.instance_id, InstanceState.RUNNING)
    # A dedicated IP: the simulated VM's own loopback address.
    assert running.ip_address is not None
    assert ipaddress.ip_address(running.ip_address).is_loopback
    assert running.metadata["hostnode_id"] == offer.placement_id
    assert 47989 in running.ports
    assert "SUNSHINE_SERVER_FREE" in await serverinfo(running)
    await tensordock_sim.set_wolf_state(created.instance_id, "busy")
    assert "SUNSHINE_SERVER_BUSY" in await serverinfo(running)

    found = await provider.find("gvm-lifecycle")
    assert found is not None
    assert found.instance_id == created.instance_id

    await provider.stop(created.instance_id)
    await wait_for(provider, created.instance_id, InstanceState.STOPPED)
    await provider.stop(created.instance_id)  # 409 "already stopped": success
    await provider.start(created.instance_id)
    restarted = await wait_for(provider, created.instance_id, InstanceState.RUNNING)
    assert "<state>" in await serverinfo(restarted)
    await provider.start(created.instance_id)  # 409 "already running": success

    await provider.delete(created.instance_id)
    assert await provider.observe(created.instance_id) is None
    assert await provider.find("gvm-lifecycle") is None
    await provider.delete(created.instance_id)  # 404: already gone is success


async def test_retro_cpu_only_create(make_adapter: object) -> None:
    provider = make_adapter()  # type: ignore[operator]
    offer = await dallas_offer(provider, VMPreset.RETRO)
    created = await provider.create(spec("gvm-retro", offer, VMPreset.RETRO))
    running = await wait_for(provider, created.instance_id, InstanceState.RUNNING)
    assert running.metadata["hostnode_id"] == offer.placement_id
    await provider.delete(created.instance_id)


@pytest.mark.parametrize("mode", ["drop", "500"])
async def test_idempotent_create_after_crash_after_create(
    make_adapter: object, tensordock_sim: TensorDockSimHandle, mode: str
) -> None:
    provider = make_adapter()  # type: ignore[operator]
    offer = await dallas_offer(provider)
    await tensordock_sim.set_faults({"crash_after_create_next": 1, "crash_mode": mode})
    first = await provider.create(spec("gvm-crash", offer))
    again = await provider.create(spec("gvm-crash", offer))  # the reconcile running again
    assert first.instance_id == again.instance_id
    assert await live_count(tensordock_sim, "gvm-crash") == 1
    counts = (await tensordock_sim.instances())["counts"]
    assert counts["create_calls"] == 1
    await provider.delete(first.instance_id)


async def test_retries_honour_retry_after_on_429(
    make_adapter: object, tensordock_sim: TensorDockSimHandle
) -> None:
    provider = make_adapter()  # type: ignore[operator]
    await tensordock_sim.set_faults({"rate_limit_next": 2, "retry_after_s": 1})
    started = time.monotonic()
    offers = await provider.offers(request())
    elapsed = time.monotonic() - started
    assert offers
    assert elapsed >= 0.95  # two 429s; the requests run concurrently, each waits >= 1 s
    stats = await tensordock_sim.stats()
    assert stats["faults_served"]["429"] == 2


async def test_long_retry_after_is_returned_not_slept(
    make_adapter: object, tensordock_sim: TensorDockSimHandle
) -> None:
    provider = make_adapter(http_backoff_max=0.5)  # type: ignore[operator]
    await tensordock_sim.set_faults({"rate_limit_next": 1, "retry_after_s": 30})
    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        await provider.find("anything")
    assert time.monotonic() - started < 5
    assert raised.value.reason is ErrorReason.RATE_LIMITED
    assert raised.value.retryable
    assert raised.value.retry_after == 30


async def test_server_errors_are_retried_then_reported(
    make_adapter: object, tensordock_sim: TensorDockSimHandle
) -> None:
    provider = make_adapter(http_retries=3)  # type: ignore[operator]
    await tensordock_sim.set_faults({"errors_next": 3, "paths": ["/instances"]})
    assert await provider.find("nobody") is None  # 3 failures, 4th attempt answers
    await tensordock_sim.set_faults({"error_rate": 1.0, "paths": ["/instances"]})
    with pytest.raises(ProviderError) as raised:
        await provider.find("nobody")
    assert raised.value.reason is ErrorReason.SERVER_ERROR
    assert raised.value.retryable
    assert "Internal server error (simulated)" in raised.value.message


async def test_create_is_not_blindly_reposted_after_5xx(
    make_adapter: object, tensordock_sim: TensorDockSimHandle
) -> None:
    provider = make_adapter()  # type: ignore[operator]
    offer = await dallas_offer(provider)
    await tensordock_sim.set_faults(
        {"errors_next": 1, "methods": ["POST"], "paths": ["/instances"]}
    )
    created = await provider.create(spec("gvm-5xx", offer))
    assert await live_count(tensordock_sim, "gvm-5xx") == 1
    await provider.delete(created.instance_id)


async def test_timeouts_are_retried(
    make_adapter: object, tensordock_sim: TensorDockSimHandle
) -> None:
    provider = make_adapter(http_timeout=0.5)  # type: ignore[operator]
    await tensordock_sim.set_faults({"timeouts_next": 1, "timeout_s": 3, "paths": ["/instances"]})
    assert await provider.find("nobody") is None
    await tensordock_sim.set_faults({"timeout_rate": 1.0, "timeout_s": 3, "paths": ["/instances"]})
    with pytest.raises(ProviderError) as raised:
        await make_adapter(http_timeout=0.3, http_retries=1).find("nobody")  # type: ignore[operator]
    assert raised.value.reason is ErrorReason.TIMEOUT
    assert raised.value.retryable


async def test_auth_failure_is_clear_and_final(
    make_adapter: object, tensordock_sim: TensorDockSimHandle
) -> None:
    wrong = "wrong-token-value-xyz"
    provider = make_adapter(token=wrong)  # type: ignore[operator]
    with pytest.raises(ProviderError) as raised:
        await provider.offers(request())
    assert raised.value.reason is ErrorReason.UNAUTHORIZED
    assert not raised.value.retryable
    assert "HTTP 401" in raised.value.message
    assert "bearer token" in raised.value.message
    assert wrong not in str(raised.value)
    stats = await tensordock_sim.stats()
    assert sum(n for k, n in stats["requests"].items() if "locations" in k) == 1  # no retry


async def test_no_capacity_maps_to_no_capacity(
    make_adapter: object, tensordock_sim: TensorDockSimHandle
) -> None:
    provider = make_adapter()  # type: ignore[operator]
    offer = await dallas_offer(provider)
    await tensordock_sim.set_faults({"no_capacity_hostnodes": [offer.placement_id]})
    with pytest.raises(ProviderError) as raised:
        await provider.create(spec("gvm-full", offer))
    assert raised.value.reason is ErrorReason.NO_CAPACITY
    assert not raised.value.retryable
    assert await live_count(tensordock_sim, "gvm-full") == 0


async def test_client_side_rate_limit_spaces_requests(tensordock_sim: TensorDockSimHandle) -> None:
    # 120/min: a burst of 12, then one request every 0.55 s.
    provider = build_provider(
        CloudProvider.TENSORDOCK,
        make_settings(tensordock_sim.base_url, tensordock_requests_per_minute=120),
        {TENSORDOCK_TOKEN: tensordock_sim.token},
    )
    try:
        started = time.monotonic()
        for _ in range(14):
            await provider.observe("missing-id")
        assert time.monotonic() - started >= 0.9
    finally:
        await provider.aclose()


async def wolf_answers(instance: Instance) -> bool:
    try:
        await serverinfo(instance)
    except aiohttp.ClientError:
        return False
    return True


async def test_without_the_wolf_setup_nothing_answers(make_adapter: object) -> None:
    provider = make_adapter()  # type: ignore[operator]
    offer = await dallas_offer(provider)
    created = await provider.create(spec("gvm-plain", offer, user_data=None))
    running = await wait_for(provider, created.instance_id, InstanceState.RUNNING)
    assert not await wolf_answers(running), "a plain image has no Wolf"
    await provider.delete(created.instance_id)


async def test_insufficient_balance_in_a_200_body_is_permanent(
    make_adapter: object, tensordock_sim: TensorDockSimHandle
) -> None:
    provider = make_adapter()  # type: ignore[operator]
    offer = await dallas_offer(provider)
    await tensordock_sim.set_faults({"balance": 0.5, "errors_with_200": True})
    with pytest.raises(ProviderError) as raised:
        await provider.create(spec("gvm-broke", offer))
    assert raised.value.reason is ErrorReason.INSUFFICIENT_BALANCE
    assert not raised.value.retryable
    assert "need at least $1.00" in raised.value.message
    counts = (await tensordock_sim.instances())["counts"]
    assert counts["create_calls"] == 1, "no retries"
    assert counts["live"] == 0


async def test_any_error_in_a_200_body_is_an_error(
    make_adapter: object, tensordock_sim: TensorDockSimHandle
) -> None:
    provider = make_adapter()  # type: ignore[operator]
    await tensordock_sim.set_faults({"errors_with_200": True})
    assert await provider.observe("no-such-instance") is None  # 404 inside a 200
    with pytest.raises(ProviderError) as raised:
        await make_adapter(token="wrong").find("x")  # type: ignore[operator]
    assert raised.value.reason is ErrorReason.UNAUTHORIZED


@pytest.mark.parametrize("shape", ["instances", "attributes", "flat"])
async def test_every_list_shape_finds_the_instance_and_never_doubles(
    make_adapter: object, tensordock_sim: TensorDockSimHandle, shape: str
) -> None:
    provider = make_adapter()  # type: ignore[operator]
    offer = await dallas_offer(provider)
    await tensordock_sim.set_faults(
        {"list_shape": shape, "crash_after_create_next": 1, "crash_mode": "drop"}
    )
    first = await provider.create(spec(f"gvm-{shape}", offer))
    found = await provider.find(f"gvm-{shape}")
    assert found is not None
    assert found.instance_id == first.instance_id
    again = await provider.create(spec(f"gvm-{shape}", offer))
    assert again.instance_id == first.instance_id
    assert await live_count(tensordock_sim, f"gvm-{shape}") == 1
    await provider.delete(first.instance_id)


async def test_a_stoppeddisassociated_vm_that_cannot_start_is_placement_lost(
    make_adapter: object, tensordock_sim: TensorDockSimHandle
) -> None:
    provider = make_adapter()  # type: ignore[operator]
    offer = await dallas_offer(provider)
    created = await provider.create(spec("gvm-reclaimed", offer))
    await wait_for(provider, created.instance_id, InstanceState.RUNNING)
    await tensordock_sim.set_faults({"reclaim_gpus_on_stop": True})
    await provider.stop(created.instance_id)
    stopped = await wait_for(provider, created.instance_id, InstanceState.STOPPED)
    assert stopped.metadata["status"] == "stoppeddisassociated"
    with pytest.raises(ProviderError) as raised:
        await provider.start(created.instance_id)
    assert raised.value.reason is ErrorReason.PLACEMENT_LOST
    assert not raised.value.retryable
    await provider.delete(created.instance_id)


# -- malformed responses: the simulator has no fault for them, so a tiny loopback server --


@pytest.fixture
async def garbage_api() -> AsyncIterator[str]:
    async def html(_request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/api/v2/{tail:.*}", html)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/api/v2"
    finally:
        await runner.cleanup()


async def test_malformed_response_is_bad_response(garbage_api: str) -> None:
    provider = build_provider(
        CloudProvider.TENSORDOCK, make_settings(garbage_api), {TENSORDOCK_TOKEN: "t"}
    )
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.offers(request())
        assert raised.value.reason is ErrorReason.BAD_RESPONSE
        assert "not JSON" in raised.value.message
        with pytest.raises(ProviderError) as observed:
            await provider.observe("x")
        assert observed.value.reason is ErrorReason.BAD_RESPONSE
    finally:
        await provider.aclose()
