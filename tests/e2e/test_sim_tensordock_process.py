"""The TensorDock simulator as a real subprocess (the `tensordock_sim` fixture)."""

import os
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp
import pytest

from gamevm.models import ConsoleType
from gamevm.services.userdata import WolfHostRequest, render_user_data
from gamevm_dev.simulators.tensordock import catalog
from tests.fixtures.simulators import TensorDockSimHandle, run_tensordock_sim

pytestmark = pytest.mark.e2e

BODY: dict[str, Any] = {
    "data": {
        "type": "virtualmachine",
        "attributes": {
            "name": "gamevm-e2e",
            "type": "virtualmachine",
            "image": "ubuntu2404",
            "resources": {
                "vcpu_count": 4,
                "ram_gb": 8,
                "storage_gb": 100,
                "gpus": {"geforcertx3080-pcie-10gb": {"count": 1}},
            },
            "location_id": catalog.DALLAS.id,
            "useDedicatedIp": True,
            "ssh_key": "ssh-ed25519 AAAA e2e",
            # The operator's own Wolf-host user data: without it no Wolf ever answers.
            "cloud_init": render_user_data(
                WolfHostRequest(
                    console=ConsoleType.SWITCH,
                    gpu=True,
                    wolf_image="ghcr.io/games-on-whales/wolf:stable",
                    report_url=None,
                    heartbeat_url=None,
                    token="e2e-token",
                )
            ),
        },
    }
}


async def _api(
    sim: TensorDockSimHandle, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {sim.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, sim.base_url + path, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def _wolf(port: int, host: str = "127.0.0.1") -> str | None:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}/serverinfo") as resp,
        ):
            return ET.fromstring(await resp.text()).findtext("state")  # noqa: S314 - loopback sim
    except aiohttp.ClientConnectionError:
        return None


async def test_lifecycle_faults_and_control_over_a_subprocess(
    tensordock_sim: TensorDockSimHandle,
) -> None:
    assert tensordock_sim.base_url.endswith("/api/v2")
    status, created = await _api(tensordock_sim, "POST", "/instances", BODY)
    assert status == 201
    vm_id = created["data"]["id"]
    _, vm = await _api(tensordock_sim, "GET", f"/instances/{vm_id}")
    port = next(p["external_port"] for p in vm["portForwards"] if p["internal_port"] == 47989)
    host = vm["ipAddress"]  # a dedicated IP: the VM's own loopback address
    assert await _wolf(port, host) == "SUNSHINE_SERVER_FREE"
    await tensordock_sim.set_wolf_state(vm_id, "busy")
    assert await _wolf(port, host) == "SUNSHINE_SERVER_BUSY"

    await tensordock_sim.set_faults({"rate_limit_next": 1})
    assert (await _api(tensordock_sim, "GET", "/locations"))[0] == 429
    assert (await _api(tensordock_sim, "GET", "/locations"))[0] == 200
    await tensordock_sim.set_faults({"crash_after_create_next": 1, "crash_mode": "500"}, merge=True)
    assert (await _api(tensordock_sim, "POST", "/instances", BODY))[0] == 500

    await _api(tensordock_sim, "POST", f"/instances/{vm_id}/stop")
    assert await _wolf(port, host) is None
    listing = await tensordock_sim.instances()
    assert listing["counts"]["live_by_name"] == {"gamevm-e2e": 2}
    stats = await tensordock_sim.stats()
    assert stats["faults_served"]["429"] == 1
    assert stats["requests"]["POST /instances"] == 2


async def test_each_test_starts_from_a_reset_simulator(tensordock_sim: TensorDockSimHandle) -> None:
    listing = await tensordock_sim.instances()
    assert listing["counts"]["created"] == 0
    assert (await _api(tensordock_sim, "GET", "/locations"))[0] == 200


async def test_stopping_the_process_stops_every_wolf_responder() -> None:
    with run_tensordock_sim() as sim:
        _, created = await _api(sim, "POST", "/instances", BODY)
        _, vm = await _api(sim, "GET", f"/instances/{created['data']['id']}")
        port = next(p["external_port"] for p in vm["portForwards"] if p["internal_port"] == 47989)
        host = vm["ipAddress"]
        assert await _wolf(port, host) == "SUNSHINE_SERVER_FREE"
        pid = sim.pid
    assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)
    assert await _wolf(port, host) is None


def _is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split(")")[-1].split()[0] == "Z"
