"""The CloudyPad adapter against the `cloudypad-sim` CLI: real subprocesses, real state.

Each test builds the adapter exactly as the registry does (minimal environment plus this
cloud's credentials); the simulator's home and zero delays come in through the generic
`cloudypad_home` / `cloudypad_env` settings, never through adapter special cases.
"""

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import pytest

from gamevm.models import PRESET_RESOURCES, CloudProvider, VMPreset
from gamevm.providers.base import (
    CreateSpec,
    ErrorReason,
    Instance,
    InstanceState,
    Offer,
    OfferRequest,
    ProviderError,
)
from gamevm.providers.cloudypad.adapter import CloudyPadProvider
from gamevm.providers.credentials import CREDENTIAL_KEYS
from gamevm.providers.registry import build_provider, build_providers, close_providers
from gamevm.settings import Settings
from tests.fixtures.simulators import CloudyPadSimHandle

# Identifiers CloudyPad takes as flags; the simulator accepts any value.
PROJECT_IDS = {
    "GOOGLE_PROJECT": "sim-project",
    "SCW_DEFAULT_PROJECT_ID": "sim-scw-project",
}
CLOUDS = [
    CloudProvider.CLOUDYPAD_GCP,
    CloudProvider.CLOUDYPAD_AWS,
    CloudProvider.CLOUDYPAD_AZURE,
    CloudProvider.CLOUDYPAD_PAPERSPACE,
    CloudProvider.CLOUDYPAD_SCALEWAY,
]
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIContractTestKey test"


def secret_data(sim: CloudyPadSimHandle) -> dict[str, str]:
    """What the credentials Secret would hold for the simulator's fake accounts."""
    data = {k: v for k, v in sim.env.items() if any(k in c.all for c in CREDENTIAL_KEYS.values())}
    return {**data, **PROJECT_IDS}


def settings_for(sim: CloudyPadSimHandle, **overrides: object) -> Settings:
    env = {"HOME": sim.env["HOME"], "CLOUDYPAD_SIM_DELAY_SCALE": "0"}
    values: dict[str, object] = {
        "cloudypad_cli": str(sim.executable),
        "cloudypad_home": str(sim.home),
        "cloudypad_env": env,
        "cloudypad_timeout": 60.0,
        "cloudypad_power_timeout": 30,
        **overrides,
    }
    return Settings.model_validate(values)


def adapter(
    sim: CloudyPadSimHandle,
    provider: CloudProvider = CloudProvider.CLOUDYPAD_GCP,
    credentials: Mapping[str, str] | None = None,
    **overrides: object,
) -> CloudyPadProvider:
    built = build_provider(
        provider,
        settings_for(sim, **overrides),
        secret_data(sim) if credentials is None else credentials,
    )
    assert isinstance(built, CloudyPadProvider)
    return built


async def first_offer(provider: CloudyPadProvider, preset: VMPreset = VMPreset.PREMIUM) -> Offer:
    offers = await provider.offers(OfferRequest(preset=preset, resources=PRESET_RESOURCES[preset]))
    assert offers
    return offers[0]


def create_spec(name: str, offer: Offer, preset: VMPreset = VMPreset.PREMIUM) -> CreateSpec:
    return CreateSpec(name=name, preset=preset, offer=offer, ssh_public_key=SSH_KEY)


async def wait_for(
    provider: CloudyPadProvider, name: str, state: InstanceState, timeout: float = 20
) -> Instance:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        instance = await provider.observe(name)
        assert instance is not None
        if instance.state is state:
            return instance
        assert asyncio.get_running_loop().time() < deadline, f"{name} stuck in {instance}"
        await asyncio.sleep(0.1)


async def serverinfo(instance: Instance) -> str:
    url = f"http://{instance.ip_address}:{instance.wolf_http_port}/serverinfo"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.get(url) as response,
    ):
        assert response.status == 200
        return await response.text()


def creates(sim: CloudyPadSimHandle) -> list[dict[str, object]]:
    return [e for e in sim.log() if e["command"] == "create"]


@pytest.mark.parametrize("cloud", CLOUDS, ids=lambda c: c.value)
async def test_full_lifecycle(cloudypad_sim: CloudyPadSimHandle, cloud: CloudProvider) -> None:
    provider = adapter(cloudypad_sim, cloud)
    offer = await first_offer(provider)
    assert offer.provider is cloud
    assert offer.price_per_hour > 0
    name = f"gvm-{cloud.value.replace('_', '-')}"

    created = await provider.create(create_spec(name, offer))
    assert created.instance_id == name
    running = await wait_for(provider, name, InstanceState.RUNNING)
    assert running.ip_address == "127.0.0.1"
    assert running.configured
    assert running.wolf_http_port != 47989  # the simulator's loopback port forward
    assert "<state>" in await serverinfo(running)
    assert running.region is not None

    await provider.stop(name)
    await wait_for(provider, name, InstanceState.STOPPED)
    await provider.stop(name)  # already stopped: success
    await provider.start(name)
    restarted = await wait_for(provider, name, InstanceState.RUNNING)
    assert "<state>" in await serverinfo(restarted)
    await provider.start(name)  # already running: success

    await provider.delete(name)
    assert await provider.observe(name) is None
    assert await provider.find(name) is None
    await provider.delete(name)  # already gone: success
    assert cloudypad_sim.wolf_pids() == []


async def test_create_args_reach_the_cli(cloudypad_sim: CloudyPadSimHandle) -> None:
    provider = adapter(cloudypad_sim)
    offers = await provider.offers(
        OfferRequest(preset=VMPreset.PREMIUM, resources=PRESET_RESOURCES[VMPreset.PREMIUM])
    )
    tokyo = next(o for o in offers if o.region == "asia-northeast1")
    await provider.create(create_spec("gvm-tokyo", tokyo))
    (instance,) = cloudypad_sim.instances()
    assert instance["provider"] == "gcp"
    code, out, _err = await cloudypad_sim.arun("get", "gvm-tokyo")
    assert code == 0
    assert '"zone": "asia-northeast1-a"' in out
    assert '"machineType": "n1-standard-8"' in out
    assert '"enable": false' in out  # CloudyPad's own auto-stop is off
    await provider.delete("gvm-tokyo")


async def test_idempotent_create_after_crash_after_create(
    cloudypad_sim: CloudyPadSimHandle,
) -> None:
    provider = adapter(cloudypad_sim)
    offer = await first_offer(provider)
    cloudypad_sim.set_faults({"crash_after_create_next": 1})
    first = await provider.create(create_spec("gvm-crash", offer))
    second = await provider.create(create_spec("gvm-crash", offer))
    assert first.instance_id == second.instance_id == "gvm-crash"
    assert len(cloudypad_sim.instances()) == 1
    assert len(creates(cloudypad_sim)) == 1
    await provider.delete("gvm-crash")


async def test_no_capacity_maps_and_cleans_up(cloudypad_sim: CloudyPadSimHandle) -> None:
    provider = adapter(cloudypad_sim, CloudProvider.CLOUDYPAD_AWS)
    offer = await first_offer(provider)
    cloudypad_sim.set_faults({"no_capacity": ["aws"]})
    with pytest.raises(ProviderError) as raised:
        await provider.create(create_spec("gvm-full", offer))
    assert raised.value.reason is ErrorReason.NO_CAPACITY
    assert not raised.value.retryable
    assert "InsufficientInstanceCapacity" in raised.value.message
    assert cloudypad_sim.instances() == []  # the inputs-only state was destroyed
    # Capacity is back: the same name creates normally (fallback to another zone too).
    cloudypad_sim.set_faults({})
    created = await provider.create(create_spec("gvm-full", offer))
    assert created.instance_id == "gvm-full"
    await provider.delete("gvm-full")


async def test_missing_cloud_credentials_is_unauthorized(
    cloudypad_sim: CloudyPadSimHandle,
) -> None:
    credentials = {**PROJECT_IDS, "AWS_ACCESS_KEY_ID": "AKIAWRONG", "AWS_SECRET_ACCESS_KEY": ""}
    # Registry: a required key is empty -> MissingCredentials without running anything.
    settings = settings_for(cloudypad_sim)
    unconfigured = build_provider(CloudProvider.CLOUDYPAD_AWS, settings, credentials)
    with pytest.raises(ProviderError) as missing:
        await unconfigured.offers(
            OfferRequest(preset=VMPreset.PREMIUM, resources=PRESET_RESOURCES[VMPreset.PREMIUM])
        )
    assert missing.value.reason is ErrorReason.MISSING_CREDENTIALS
    assert "AWS_SECRET_ACCESS_KEY" in missing.value.message
    # GCP with a project but no credentials file: the CLI refuses, clearly.
    gcp = adapter(cloudypad_sim, credentials=PROJECT_IDS)
    offer = await first_offer(gcp)
    with pytest.raises(ProviderError) as raised:
        await gcp.create(create_spec("gvm-noauth", offer))
    assert raised.value.reason is ErrorReason.UNAUTHORIZED
    assert not raised.value.retryable
    assert "Could not load the default credentials" in raised.value.message


async def test_secrets_never_appear_in_errors(cloudypad_sim: CloudyPadSimHandle) -> None:
    secret = "super-secret-value-123"
    cloudypad_sim.set_faults({"fail_next": 1, "fail_message": f"boom with token {secret}"})
    credentials = {**secret_data(cloudypad_sim), "AWS_SECRET_ACCESS_KEY": secret}
    provider = adapter(cloudypad_sim, CloudProvider.CLOUDYPAD_AWS, credentials=credentials)
    offer = await first_offer(provider)
    with pytest.raises(ProviderError) as raised:
        await provider.create(create_spec("gvm-secret", offer))
    assert secret not in str(raised.value)
    assert "***" in raised.value.message
    assert raised.value.reason is ErrorReason.CLI_FAILED
    assert raised.value.retryable


async def test_unparseable_get_is_bad_response(cloudypad_sim: CloudyPadSimHandle) -> None:
    provider = adapter(cloudypad_sim)
    await provider.create(create_spec("gvm-garbage", await first_offer(provider)))
    cloudypad_sim.set_faults({"garbage_get_next": 1})
    with pytest.raises(ProviderError) as raised:
        await provider.observe("gvm-garbage")
    assert raised.value.reason is ErrorReason.BAD_RESPONSE
    assert (await provider.observe("gvm-garbage")) is not None
    await provider.delete("gvm-garbage")


async def test_cli_failure_carries_the_cli_message(cloudypad_sim: CloudyPadSimHandle) -> None:
    provider = adapter(cloudypad_sim)
    await provider.create(create_spec("gvm-fail", await first_offer(provider)))
    cloudypad_sim.set_faults({"fail_next": 1, "fail_commands": ["stop"]})
    with pytest.raises(ProviderError) as raised:
        await provider.stop("gvm-fail")
    assert raised.value.reason is ErrorReason.CLI_FAILED
    assert "Pulumi operation failed: simulated provider error" in raised.value.message
    await provider.delete("gvm-fail")


async def test_slow_cli_times_out_and_is_killed(cloudypad_sim: CloudyPadSimHandle) -> None:
    cloudypad_sim.set_faults({"delay_s": 30})
    provider = adapter(cloudypad_sim, cloudypad_timeout=0.5)
    with pytest.raises(ProviderError) as raised:
        await provider.observe("anything")
    assert raised.value.reason is ErrorReason.TIMEOUT
    assert raised.value.retryable


async def test_unknown_instance(cloudypad_sim: CloudyPadSimHandle) -> None:
    provider = adapter(cloudypad_sim)
    assert await provider.observe("nope") is None
    await provider.delete("nope")
    with pytest.raises(ProviderError) as raised:
        await provider.start("nope")
    assert raised.value.reason is ErrorReason.NOT_FOUND


async def test_gpu_less_presets_are_not_offered(cloudypad_sim: CloudyPadSimHandle) -> None:
    for cloud in CLOUDS:
        provider = adapter(cloudypad_sim, cloud)
        request = OfferRequest(preset=VMPreset.RETRO, resources=PRESET_RESOURCES[VMPreset.RETRO])
        assert await provider.offers(request) == []


async def test_missing_binary_is_a_clear_error(cloudypad_sim: CloudyPadSimHandle) -> None:
    provider = adapter(cloudypad_sim, cloudypad_cli=os.devnull + "-cloudypad")
    with pytest.raises(ProviderError) as raised:
        await provider.observe("x")
    assert raised.value.reason is ErrorReason.CLI_FAILED
    assert not raised.value.retryable
    assert "cannot run" in raised.value.message


async def test_unfinished_create_counts_as_absent(cloudypad_sim: CloudyPadSimHandle) -> None:
    # A create that died before provisioning (here: no capacity, run by hand) leaves
    # inputs-only state behind; the adapter neither adopts nor trips over it.
    cloudypad_sim.set_faults({"no_capacity": True})
    code, out, err = await cloudypad_sim.arun(
        "create", "aws", "--name", "gvm-leftover", "--yes", "--overwrite-existing",
        "--skip-pairing", "--streaming-server", "wolf", "--autostop", "no", "--region",
        "us-east-1", "--zone", "us-east-1a", "--instance-type", "g4dn.xlarge", "--spot", "no",
        "--disk-size", "100", "--data-disk-size", "100", "--dedicated-vpc", "--cost-alert", "no",
    )  # fmt: skip
    assert code == 1
    assert "InsufficientInstanceCapacity" in out  # errors are logged on stdout
    assert "Oops, something went wrong" in err
    cloudypad_sim.set_faults({})
    provider = adapter(cloudypad_sim, CloudProvider.CLOUDYPAD_AWS)
    assert await provider.find("gvm-leftover") is None
    pending = await provider.observe("gvm-leftover")
    assert pending is not None
    assert pending.state is InstanceState.PENDING
    created = await provider.create(create_spec("gvm-leftover", await first_offer(provider)))
    assert created.metadata["provisioned"] == "true"
    assert len(cloudypad_sim.instances()) == 1
    await provider.delete("gvm-leftover")


def cli_processes(home: str) -> list[int]:
    """Live CLI processes of this CloudyPad home (our own children). Each run has a data
    root of its own; Pulumi's backend, pinned to the shared home, names it."""
    marker = f"PULUMI_BACKEND_URL=file://{home}/pulumi-backend".encode()
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
            with open(f"/proc/{entry.name}/stat") as handle:
                zombie = handle.read().rsplit(")", 1)[-1].split()[:1] == ["Z"]
        except OSError:
            continue
        if marker in environ and not zombie:
            pids.append(int(entry.name))
    return pids


async def test_cancelled_call_kills_the_cli(cloudypad_sim: CloudyPadSimHandle) -> None:
    cloudypad_sim.set_faults({"delay_s": 30})
    provider = adapter(cloudypad_sim)
    task = asyncio.create_task(provider.observe("anything"))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if cli_processes(str(cloudypad_sim.home)):
            break
    assert cli_processes(str(cloudypad_sim.home))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cli_processes(str(cloudypad_sim.home)) == []


async def test_a_create_that_exits_0_without_an_instance_is_a_failure(
    cloudypad_sim: CloudyPadSimHandle,
) -> None:
    provider = adapter(cloudypad_sim)
    offer = await first_offer(provider)
    cloudypad_sim.set_faults({"silent_create_failure_next": 1})
    with pytest.raises(ProviderError) as raised:
        await provider.create(create_spec("gvm-silent", offer))
    assert raised.value.reason is ErrorReason.CLI_FAILED
    assert raised.value.retryable
    assert "exit 0 but `get gvm-silent` shows no provisioned instance" in raised.value.message
    assert [e["exit"] for e in creates(cloudypad_sim)] == [0]
    created = await provider.create(create_spec("gvm-silent", offer))  # the retry creates
    assert created.metadata["provisioned"] == "true"
    await provider.delete("gvm-silent")


async def test_cli_runs_are_bounded_across_providers(tmp_path: Path) -> None:
    # A stand-in CLI that records how many runs overlap (each run sleeps 0.3 s).
    log = tmp_path / "runs.log"
    cli = tmp_path / "cli.sh"
    cli.write_text(
        "#!/bin/sh\n"
        f"echo start >> {log}\nsleep 0.3\necho end >> {log}\n"
        "echo \"Caused by (1): Error: Instance named '$2' does not exist.\"\nexit 1\n"
    )
    cli.chmod(0o755)
    settings = Settings.model_validate(
        {
            "cloudypad_cli": str(cli),
            "cloudypad_home": str(tmp_path / "home"),
            "cloudypad_max_concurrent_runs": 2,
        }
    )
    providers = build_providers(settings, {"GOOGLE_PROJECT": "p", "PAPERSPACE_API_KEY": "k"})
    gcp = providers[CloudProvider.CLOUDYPAD_GCP]
    paperspace = providers[CloudProvider.CLOUDYPAD_PAPERSPACE]
    names = [f"gvm-{c}" for c in "abcdef"]
    try:
        results = await asyncio.gather(
            *(p.observe(n) for p, n in zip([gcp, paperspace] * 3, names, strict=True))
        )
    finally:
        await close_providers(providers)
    assert results == [None] * 6
    running = peak = 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        peak = max(peak, running)
    # Never more than the bound (6 without it); how many overlap below it is scheduling.
    assert 1 <= peak <= 2
