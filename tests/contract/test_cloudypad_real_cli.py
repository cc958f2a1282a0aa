"""The project's CloudyPad adapter against the real CloudyPad CLI 0.45.1 (no TTY, offline).

- CloudyPad's offline `dummy` provider runs a whole lifecycle through the adapter (a Cloud
  table for `dummy`; the adapter code is the one the five clouds use).
- Errors are classified from the real output: a missing instance, a question the CLI
  would need to ask, bad credentials.
- For each of the five clouds the exact create command line the adapter builds runs
  through the real CLI's parsing and prompts and fails only where it first needs the
  cloud (Pulumi, which is not installed here, or the network): never at a prompt.

Each test has its own CLOUDYPAD_HOME. A real CLI call takes 4-5 s, so the five clouds
run concurrently in one module fixture.
"""

import asyncio
import base64
import json
import logging
import re
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gamevm.models import PRESET_RESOURCES, CloudProvider, GpuTier, VMPreset
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
from gamevm.providers.cloudypad.catalog import CLOUD_OF_PROVIDER, Cloud, Machine, Region
from gamevm.services.reconcile import instance_name
from gamevm_dev.simulators.cloudypad.kebab import kebab_case

pytestmark = pytest.mark.real_cloudypad

DUMMY = Cloud(
    name="dummy",
    cli_provider="dummy",
    region_flag=None,
    zone_flag=None,
    machine_flag="--instance-type",
    gpu_flag=None,
    credential_flags={},
    extra_create_args=(),
    stop_deletes_server=False,
    ssh_key_flag=None,
    regions=(Region("dummy", None, "dummy", "Nowhere", 0.0, 0.0),),
    machines={VMPreset.ADVANCED: Machine("dummy-instance-type-1", None, "none", 4, 16, 0.1, "USD")},
)
# Credentials each cloud's SDKs would read: well-formed, not valid anywhere.
FAKE_CREDENTIALS: Mapping[CloudProvider, Mapping[str, str]] = {
    CloudProvider.CLOUDYPAD_GCP: {
        "GOOGLE_PROJECT": "gamevm-test-project",
        "GOOGLE_CREDENTIALS": '{"type": "service_account", "project_id": "gamevm-test-project"}',
    },
    CloudProvider.CLOUDYPAD_AWS: {
        "AWS_ACCESS_KEY_ID": "AKIAGAMEVMTEST000000",
        "AWS_SECRET_ACCESS_KEY": "gamevm-test-aws-secret-key",
    },
    CloudProvider.CLOUDYPAD_AZURE: {
        "AZURE_CLIENT_ID": "00000000-0000-4000-8000-0000000000a1",
        "AZURE_CLIENT_SECRET": "gamevm-test-azure-secret",
        "AZURE_TENANT_ID": "00000000-0000-4000-8000-0000000000a2",
        "AZURE_SUBSCRIPTION_ID": "00000000-0000-4000-8000-0000000000a3",
    },
    CloudProvider.CLOUDYPAD_PAPERSPACE: {"PAPERSPACE_API_KEY": "gamevm-test-paperspace-key"},
    CloudProvider.CLOUDYPAD_SCALEWAY: {
        "SCW_ACCESS_KEY": "SCWGAMEVMTEST0000000",
        "SCW_SECRET_KEY": "00000000-0000-4000-8000-0000000000b1",
        "SCW_DEFAULT_PROJECT_ID": "00000000-0000-4000-8000-0000000000b2",
    },
}
PROMPT = re.compile(r"ExitPromptError|Failed to prompt input|needed an answer")


def adapter(
    cli: Path,
    base: Path,
    provider: CloudProvider = CloudProvider.CLOUDYPAD_GCP,
    *,
    cloud: Cloud | None = None,
    credentials: Mapping[str, str] | None = None,
) -> CloudyPadProvider:
    """The adapter as the registry builds it, its state under `base`."""
    return CloudyPadProvider(
        provider,
        cli=str(cli),
        credentials=FAKE_CREDENTIALS[provider] if credentials is None else credentials,
        timeout=300,
        power_timeout=120,
        home=str(base / "cloudypad"),
        extra_env={"HOME": str(base / "home")},
        cloud=cloud,
        eur_usd_rate=1.16,
    )


async def first_offer_spec(provider: CloudyPadProvider, name: str) -> CreateSpec:
    request = OfferRequest(preset=VMPreset.ADVANCED, resources=PRESET_RESOURCES[VMPreset.ADVANCED])
    offers = await provider.offers(request)
    return CreateSpec(name=name, preset=VMPreset.ADVANCED, offer=offers[0], ssh_public_key="")


def dummy_spec(name: str) -> CreateSpec:
    region = DUMMY.regions[0]
    offer = Offer(
        provider=CloudProvider.CLOUDYPAD_GCP,
        region=region.region,
        placement_id=region.region,
        location_label=region.label,
        latitude=0.0,
        longitude=0.0,
        price_per_hour=0.1,
        vcpu=4,
        ram_gb=16,
        gpu_tier=GpuTier.BASIC,
    )
    return CreateSpec(name=name, preset=VMPreset.ADVANCED, offer=offer, ssh_public_key="")


def edit_state(base: Path, name: str, **provision_input: Any) -> None:
    """Change the dummy provider's simulated hardware (its delays, stop behaviour)."""
    path = base / "cloudypad" / "instances" / name / "state.yml"
    state = yaml.safe_load(path.read_text())
    state["provision"]["input"].update(provision_input)
    path.write_text(yaml.safe_dump(state, sort_keys=False))


def private_key_traces(base: Path, name: str) -> list[str]:
    """The SSH private key CloudyPad generated, as `get` prints it (base64) and decoded."""
    path = base / "cloudypad" / "instances" / name / "state.yml"
    encoded = yaml.safe_load(path.read_text())["provision"]["input"]["ssh"][
        "privateKeyContentBase64"
    ]
    decoded = base64.b64decode(encoded).decode()
    body = [line for line in decoded.splitlines() if line and not line.startswith("-----")]
    return [encoded[:40], *body]


async def test_dummy_lifecycle_through_the_adapter(
    real_cloudypad_cli: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    name = instance_name(str(uuid.uuid4()))  # a kebab-case name the real CLI takes as is
    provider = adapter(real_cloudypad_cli, tmp_path, cloud=DUMMY)
    seen: list[Any] = []

    created = await provider.create(dummy_spec(name))
    seen.append(created)
    assert created.instance_id == name
    assert created.state is InstanceState.RUNNING
    assert created.metadata["provisioned"] == "true"
    config = yaml.safe_load((tmp_path / "cloudypad" / "config.yml").read_text())
    assert config["analytics"]["posthog"]["collectionMethod"] == "none"
    # The dummy's own stop/start delay is 10 s: make it instant, and make its stop delete
    # the server like CloudyPad's default on the real clouds.
    edit_state(tmp_path, name, startDelaySeconds=0, stopDelaySeconds=0)

    await provider.stop(name)
    stopped = await provider.observe(name)
    seen.append(stopped)
    assert stopped is not None
    assert stopped.state is InstanceState.STOPPED
    await provider.start(name)
    running = await provider.observe(name)
    seen.append(running)
    assert running is not None
    assert running.state is InstanceState.RUNNING

    edit_state(tmp_path, name, deleteInstanceServerOnStop=True)
    await provider.stop(name)
    gone_server = await provider.observe(name)
    seen.append(gone_server)
    assert gone_server is not None
    assert gone_server.metadata["serverStatus"] == "unknown"  # the server was deleted
    assert gone_server.state is InstanceState.STOPPED  # ... and the VM is not lost
    await provider.start(name)  # re-provisions and reconfigures
    resumed = await provider.observe(name)
    seen.append(resumed)
    assert resumed is not None
    assert resumed.state is InstanceState.RUNNING
    assert resumed.configured

    # A restarted operator: a new adapter on the same CLOUDYPAD_HOME finds the instance.
    await provider.aclose()
    restarted = adapter(real_cloudypad_cli, tmp_path, cloud=DUMMY)
    found = await restarted.find(name)
    seen.append(found)
    assert found is not None
    assert found.instance_id == name
    traces = private_key_traces(tmp_path, name)

    await restarted.delete(name)
    assert await restarted.observe(name) is None
    await restarted.delete(name)  # already gone: success
    await restarted.aclose()

    # `get` printed the SSH private key on every call: none of it left the adapter.
    text = caplog.text + repr(seen)
    assert all(trace not in text for trace in traces)


async def test_missing_instance(real_cloudypad_cli: Path, tmp_path: Path) -> None:
    provider = adapter(real_cloudypad_cli, tmp_path, cloud=DUMMY)
    observed, deleted, started = await asyncio.gather(
        provider.observe("gvm-nowhere"),
        provider.delete("gvm-nowhere"),
        provider.start("gvm-nowhere"),
        return_exceptions=True,
    )
    assert observed is None
    assert deleted is None  # a missing instance counts as gone
    assert isinstance(started, ProviderError)
    assert started.reason is ErrorReason.NOT_FOUND
    assert "Instance named 'gvm-nowhere' does not exist." in started.message


async def test_runs_at_once_do_not_race_on_the_config_file(
    real_cloudypad_cli: Path, tmp_path: Path
) -> None:
    """CloudyPad rewrites config.yml in place at every start: runs sharing one data root
    read it half-written ("Couldn't parse Config with Zod ... null"). Each run has its own."""
    provider = adapter(real_cloudypad_cli, tmp_path, cloud=DUMMY)
    try:
        for _round in range(2):
            seen = await asyncio.gather(
                *(provider.observe(f"gvm-nowhere-{i}") for i in "abcd"), return_exceptions=True
            )
            assert seen == [None] * 4
    finally:
        await provider.aclose()
    home = tmp_path / "cloudypad"
    assert sorted(p.name for p in home.iterdir()) == ["config.yml", "instances"]


async def test_a_name_the_cli_would_ask_about_is_a_permanent_error(
    real_cloudypad_cli: Path, tmp_path: Path
) -> None:
    provider = adapter(real_cloudypad_cli, tmp_path, cloud=DUMMY)
    with pytest.raises(ProviderError) as raised:
        await provider.create(dummy_spec("gvm-3f2a9c1e"))  # lodash: gvm-3-f-2-a-9-c-1-e
    assert raised.value.reason is ErrorReason.INVALID_REQUEST
    assert not raised.value.retryable
    assert "Instance name must be kebab case. Use gvm-3-f-2-a-9-c-1-e instead?" in str(raised.value)


async def test_bad_credentials_are_unauthorized(real_cloudypad_cli: Path, tmp_path: Path) -> None:
    bad = {**FAKE_CREDENTIALS[CloudProvider.CLOUDYPAD_SCALEWAY], "SCW_ACCESS_KEY": "not-a-key"}
    provider = adapter(
        real_cloudypad_cli, tmp_path, CloudProvider.CLOUDYPAD_SCALEWAY, credentials=bad
    )
    with pytest.raises(ProviderError) as raised:
        await provider.create(await first_offer_spec(provider, "gvm-badkey"))
    assert raised.value.reason is ErrorReason.UNAUTHORIZED
    assert not raised.value.retryable
    assert "Invalid access key format" in raised.value.message
    assert "not-a-key" not in raised.value.message  # credential values are redacted


@dataclass
class CloudRun:
    """What one cloud's create did: the error and the state it left."""

    error: BaseException | None
    created: Instance | None
    state: dict[str, Any] | None


async def _create_on(cli: Path, base: Path, provider: CloudProvider) -> CloudRun:
    base.mkdir()
    name = instance_name(str(uuid.uuid5(uuid.NAMESPACE_DNS, provider.value)))
    adapter_ = adapter(cli, base, provider)
    spec = await first_offer_spec(adapter_, name)
    error: BaseException | None = None
    created = None
    try:
        created = await adapter_.create(spec)
    except ProviderError as exc:
        error = exc
    state_file = base / "cloudypad" / "instances" / name / "state.yml"
    state = yaml.safe_load(state_file.read_text()) if state_file.exists() else None
    await adapter_.aclose()
    return CloudRun(error, created, state)


@pytest.fixture(scope="module")
def cloud_runs(
    real_cloudypad_cli: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[CloudProvider, CloudRun]:
    """Each cloud's create through the adapter and the real CLI, all five at once."""
    base = tmp_path_factory.mktemp("clouds")

    async def run_all() -> list[CloudRun]:
        return await asyncio.gather(
            *(_create_on(real_cloudypad_cli, base / p.value, p) for p in CLOUD_OF_PROVIDER)
        )

    return dict(zip(CLOUD_OF_PROVIDER, asyncio.run(run_all()), strict=True))


@pytest.mark.parametrize("provider", list(CLOUD_OF_PROVIDER), ids=lambda p: p.value)
def test_create_argv_runs_up_to_the_first_cloud_call(
    cloud_runs: dict[CloudProvider, CloudRun], provider: CloudProvider
) -> None:
    run = cloud_runs[provider]
    assert run.created is None, "offline: no cloud can have created an instance"
    assert isinstance(run.error, ProviderError)
    message = str(run.error)
    assert not PROMPT.search(message), f"the CLI asked a question: {message}"
    # Past every question: provisioning started (Pulumi, not installed here) or the first
    # API call failed for lack of network.
    assert run.error.reason in (ErrorReason.CLI_FAILED, ErrorReason.CONNECTION_ERROR), message
    assert re.search(r"ENOENT: pulumi|ENOTFOUND|EAI_AGAIN|fetch failed", message), message
    cloud = CLOUD_OF_PROVIDER[provider]
    if cloud != "paperspace":
        # Every prompt answered: the inputs were saved, with a stop that keeps the server.
        assert run.state is not None
        provision_input = run.state["provision"]["input"]
        assert provision_input["deleteInstanceServerOnStop"] is False
        assert not provision_input.get("dataDiskSnapshot", {}).get("enable")
        assert run.state["configuration"]["input"]["wolf"]["enable"] is True
        assert run.state["configuration"]["input"]["autostop"]["enable"] is False


def test_python_kebab_case_matches_lodash(real_cloudypad_cli: Path) -> None:
    names = [
        "gvm-3f2a9c1e", "gvm-abc-def", "a1b", "Foo Bar", "fooBar", "ABCdef", "x-1st",
        "x4th", "my_name", "a--b", "-a-", "HTML5", "gvm-1", "abc123def", "1abc",
        *(instance_name(str(uuid.uuid4())) for _ in range(20)),
    ]  # fmt: skip
    app = real_cloudypad_cli.resolve().parent.parent / "app"
    script = "const _ = require('lodash'); for (const n of JSON.parse(process.argv[1])) "
    script += "console.log(_.kebabCase(n))"
    done = subprocess.run(
        ["node", "-e", script, json.dumps(names)],
        cwd=app,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.splitlines() == [kebab_case(n) for n in names]
    for name in names[-20:]:
        assert kebab_case(name) == name  # the operator's names pass CloudyPad's check
