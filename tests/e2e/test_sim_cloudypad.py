"""The `cloudypad-sim` console script as real subprocesses (the `cloudypad_sim` fixture)."""

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gamevm.models.enums import CloudProvider, GpuTier, VMPreset
from gamevm.providers.base import Offer
from gamevm.providers.cloudypad.catalog import cloudypad_catalog
from gamevm.providers.cloudypad.cli import create_args as cli_create_args
from tests.fixtures.simulators import CloudyPadSimHandle, cloudypad_sim_home, wolf_processes

pytestmark = pytest.mark.e2e

PROVIDERS = ["aws", "azure", "gcp", "paperspace", "scaleway"]
FLAG_VALUES = {"GOOGLE_PROJECT": "proj", "AZURE_SUBSCRIPTION_ID": "sub"}
FLAG_VALUES["SCW_DEFAULT_PROJECT_ID"] = "00000000-0000-4000-8000-000000000001"


def create_args(provider: str, name: str, *extra: str, zone_of_first: bool = True) -> list[str]:
    """The command line the operator's adapter sends for this cloud's first placement."""
    cloud = cloudypad_catalog()[provider]
    region = cloud.regions[0]
    details = {"cli_region": region.cli_value, **({"zone": region.zone} if region.zone else {})}
    offer = Offer(
        provider=CloudProvider(f"cloudypad_{provider}"), region=region.region,
        placement_id=region.zone or region.region, location_label=region.label,
        latitude=region.latitude, longitude=region.longitude, price_per_hour=1.0, vcpu=4,
        ram_gb=16, gpu_tier=GpuTier.BASIC, details=details,
    )  # fmt: skip
    key = "/nonexistent/key" if cloud.ssh_key_flag else None
    return [*cli_create_args(cloud, name, VMPreset.ADVANCED, offer, FLAG_VALUES, key), *extra]


def get(sim: CloudyPadSimHandle, name: str) -> dict[str, Any]:
    code, out, err = sim.run("get", name)
    assert code == 0, err
    parsed: dict[str, Any] = json.loads(out)
    return parsed


async def wolf_state(port: int) -> str | None:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/serverinfo") as resp,
        ):
            return ET.fromstring(await resp.text()).findtext("state")  # noqa: S314 - loopback sim
    except aiohttp.ClientConnectionError:
        return None


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_full_lifecycle_per_cloud(cloudypad_sim: CloudyPadSimHandle, provider: str) -> None:
    name = f"vm-{provider}"
    code, _, err = await cloudypad_sim.arun(*create_args(provider, name))
    assert code == 0, err
    state = get(cloudypad_sim, name)
    assert state["provision"]["provider"] == provider
    assert state["provision"]["output"]["host"] == "127.0.0.1"
    assert state["configuration"]["input"]["wolf"]["enable"] is True
    assert state["configuration"]["input"]["autostop"]["enable"] is False
    assert state["status"] == {
        "serverStatus": "running",
        "provisioned": True,
        "configured": True,
        "ready": True,
    }
    port = state["provision"]["output"]["portForwards"]["47989"]
    assert await wolf_state(port) == "SUNSHINE_SERVER_FREE"

    assert (await cloudypad_sim.arun("stop", name, "--wait", "--timeout", "30"))[0] == 0
    assert get(cloudypad_sim, name)["status"]["serverStatus"] == "stopped"
    assert await wolf_state(port) is None
    assert cloudypad_sim.wolf_pids() == []

    assert (await cloudypad_sim.arun("start", name, "--wait"))[0] == 0
    assert get(cloudypad_sim, name)["status"]["ready"] is True
    assert await wolf_state(port) == "SUNSHINE_SERVER_FREE"

    assert (await cloudypad_sim.arun("destroy", name, "--yes"))[0] == 0
    code, out, err = cloudypad_sim.run("get", name)
    assert code == 1
    assert f"Instance named '{name}' does not exist." in out
    assert "Oops, something went wrong" in err
    assert cloudypad_sim.wolf_pids() == []


def test_version_and_list(cloudypad_sim: CloudyPadSimHandle) -> None:
    assert cloudypad_sim.run("--version")[1].strip() == "0.45.1"
    for name in ("b", "a"):
        assert cloudypad_sim.run(*create_args("aws", name))[0] == 0
    assert cloudypad_sim.run("list")[1].split() == ["a", "b"]
    assert json.loads(cloudypad_sim.run("list", "--format", "json")[1]) == ["a", "b"]
    assert [i["name"] for i in cloudypad_sim.instances()] == ["a", "b"]
    assert len(cloudypad_sim.wolf_pids()) == 2


async def test_wolf_busy_free_switching(cloudypad_sim: CloudyPadSimHandle) -> None:
    assert cloudypad_sim.run(*create_args("gcp", "w"))[0] == 0
    port = get(cloudypad_sim, "w")["provision"]["output"]["portForwards"]["47989"]
    assert cloudypad_sim.run("sim-wolf", "w", "busy")[0] == 0
    assert await wolf_state(port) == "SUNSHINE_SERVER_BUSY"
    cloudypad_sim.set_wolf_state("w", "free")
    assert await wolf_state(port) == "SUNSHINE_SERVER_FREE"


@pytest.mark.parametrize(
    ("provider", "variable", "fragment"),
    [
        ("gcp", "GOOGLE_APPLICATION_CREDENTIALS", "Could not load the default credentials"),
        ("aws", "AWS_SECRET_ACCESS_KEY", "Could not load credentials from any providers"),
        ("azure", "AZURE_TENANT_ID", "DefaultAzureCredential failed"),
        ("paperspace", "PAPERSPACE_API_KEY", "No Paperspace API Key found"),
        ("scaleway", "HOME", "Did you configure your Scaleway credentials?"),
    ],
)
def test_missing_credentials_fail_clearly(
    cloudypad_sim: CloudyPadSimHandle, provider: str, variable: str, fragment: str
) -> None:
    if variable == "HOME":  # Scaleway: its config file lives under HOME
        cloudypad_sim.env["HOME"] = str(cloudypad_sim.home)
    else:
        del cloudypad_sim.env[variable]
    code, out, err = cloudypad_sim.run(*create_args(provider, "nocreds"))
    assert code == 1
    assert fragment in out
    assert "Oops, something went wrong" in err
    assert cloudypad_sim.instances() == []


def test_non_interactive_errors(cloudypad_sim: CloudyPadSimHandle) -> None:
    args = create_args("gcp", "x")
    code, out, _ = cloudypad_sim.run(*args[: args.index("--nic-type")])
    assert code == 1
    assert "? Select NIC type" in out
    assert "ExitPromptError" in out
    code, out, _ = cloudypad_sim.run(*create_args("gcp", "x"), "--zone", "europe-west4-a")
    assert code == 1
    assert "not in region" in out
    assert cloudypad_sim.run(*create_args("aws", "dup"))[0] == 0
    args = [a for a in create_args("aws", "dup") if a != "--overwrite-existing"]
    code, out, _ = cloudypad_sim.run(*args)
    assert (code, "already exists" in out) == (1, True)
    code, out, _ = cloudypad_sim.run("destroy", "dup")
    assert (code, "Please confirm" in out) == (1, True)
    code, _, err = cloudypad_sim.run("create", "aws", "--bogus")
    assert (code, err.strip()) == (1, "error: unknown option '--bogus'")


def test_fail_fault_by_count(cloudypad_sim: CloudyPadSimHandle) -> None:
    cloudypad_sim.set_faults({"fail_next": 1, "fail_commands": ["create"], "fail_message": "boom"})
    code, out, _ = cloudypad_sim.run(*create_args("aws", "f"))
    assert code == 1
    assert "Caused by (1): Error: boom" in out
    assert cloudypad_sim.instances() == []
    assert cloudypad_sim.run(*create_args("aws", "f"))[0] == 0
    assert [e["exit"] for e in cloudypad_sim.log() if e["command"] == "create"] == [1, 0]


@pytest.mark.parametrize(
    ("provider", "message"),
    [("gcp", "ZONE_RESOURCE_POOL_EXHAUSTED"), ("aws", "InsufficientInstanceCapacity")],
)
def test_no_capacity_uses_the_clouds_message(
    cloudypad_sim: CloudyPadSimHandle, provider: str, message: str
) -> None:
    cloudypad_sim.set_faults({"no_capacity": {provider: ["*"]}})
    code, out, _ = cloudypad_sim.run(*create_args(provider, "nc"))
    assert code == 1
    assert message in out
    (inst,) = cloudypad_sim.instances()
    assert inst["provisioned"] is False  # initial state saved, nothing provisioned
    assert get(cloudypad_sim, "nc")["status"]["serverStatus"] == "unknown"
    assert cloudypad_sim.wolf_pids() == []
    assert cloudypad_sim.run("destroy", "nc", "--yes")[0] == 0


def test_no_capacity_can_target_one_zone(cloudypad_sim: CloudyPadSimHandle) -> None:
    cloudypad_sim.set_faults({"no_capacity": {"gcp": ["us-central1-a"]}})
    assert cloudypad_sim.run(*create_args("gcp", "z"))[0] == 1
    assert cloudypad_sim.run(*create_args("aws", "y"))[0] == 0


async def test_crash_after_create_leaves_a_running_instance(
    cloudypad_sim: CloudyPadSimHandle,
) -> None:
    cloudypad_sim.set_faults({"crash_after_create_next": 1})
    code, out, _ = cloudypad_sim.run(*create_args("gcp", "crash"))
    assert code == 1
    assert "simulated crash" in out
    state = get(cloudypad_sim, "crash")
    assert state["status"]["ready"] is True
    assert await wolf_state(state["provision"]["output"]["portForwards"]["47989"]) is not None
    assert cloudypad_sim.run(*create_args("gcp", "crash"))[0] == 0  # overwrite: still one
    assert len(cloudypad_sim.wolf_pids()) == 1


def test_garbage_get(cloudypad_sim: CloudyPadSimHandle) -> None:
    assert cloudypad_sim.run(*create_args("aws", "g"))[0] == 0
    cloudypad_sim.set_faults({"garbage_get_next": 1})
    code, out, _ = cloudypad_sim.run("get", "g")
    assert code == 0
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    assert get(cloudypad_sim, "g")["name"] == "g"


def test_seeded_fail_rate_is_reproducible(cloudypad_sim: CloudyPadSimHandle) -> None:
    runs = []
    for _ in range(2):
        cloudypad_sim.set_faults({"seed": 3, "fail_rate": 0.5, "fail_commands": ["list"]})
        (cloudypad_sim.home / ".sim-counter").unlink(missing_ok=True)
        results = [cloudypad_sim.run("list") for _ in range(8)]
        runs.append([code for code, _, _ in results])
        failed = {"simulated provider error" in out for code, out, _ in results if code}
        assert failed <= {True}
    assert runs[0] == runs[1]
    assert set(runs[0]) == {0, 1}


def test_delays_and_wait_timeout(cloudypad_sim: CloudyPadSimHandle) -> None:
    assert cloudypad_sim.run(*create_args("aws", "slow"))[0] == 0
    cloudypad_sim.env["CLOUDYPAD_SIM_DELAY_SCALE"] = "0.25"  # stop 5 s, start 11 s
    assert cloudypad_sim.run("stop", "slow")[0] == 0
    assert get(cloudypad_sim, "slow")["status"]["serverStatus"] == "stopping"
    assert cloudypad_sim.run("stop", "slow", "--wait")[0] == 0  # already stopping: returns
    code, out, _ = cloudypad_sim.run("start", "slow", "--wait", "--timeout", "0.1")
    assert code == 1
    assert "Timeout" in out


def test_teardown_leaves_no_process(tmp_path: Path) -> None:
    with cloudypad_sim_home(tmp_path) as sim:
        assert sim.run(*create_args("scaleway", "t"))[0] == 0
        assert sim.run(*create_args("gcp", "u"))[0] == 0
        assert sim.run("stop", "u")[0] == 0
        assert sim.run("start", "u")[0] == 0
        pids = sim.wolf_pids()
        assert len(pids) == 2
        assert all(os.path.exists(f"/proc/{pid}") for pid in pids)
    assert wolf_processes(sim.home) == []
