"""The TensorDock v2 simulator in-process over real HTTP: shapes, rules, lifecycle, faults."""

import asyncio
import ipaddress
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gamevm.models import ConsoleType
from gamevm.services.userdata import WolfHostRequest, render_user_data
from gamevm_dev.simulators.tensordock import RunningSim, catalog, running_sim

GPU = "geforcertx4090-pcie-24gb"


def wolf_user_data(
    report_url: str | None = None,
    token: str = "vm-token",  # noqa: S107 - a test value
) -> dict[str, Any]:
    """The operator's own Wolf-host user data (what the operator sends at create)."""
    return render_user_data(
        WolfHostRequest(
            console=ConsoleType.SWITCH,
            gpu=True,
            wolf_image="ghcr.io/games-on-whales/wolf:stable",
            report_url=report_url,
            heartbeat_url=None,
            token=token,
        )
    )


TOKYO_NODE = next(h for h in catalog.HOSTNODES if h.label == "tyo-1")
DALLAS_CPU_NODE = next(h for h in catalog.HOSTNODES if h.label == "dal-2")


def vm_body(**overrides: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "name": "gamevm-abc",
        "type": "virtualmachine",
        "image": "ubuntu2404",
        "resources": {"vcpu_count": 4, "ram_gb": 8, "storage_gb": 100, "gpus": {GPU: {"count": 1}}},
        "location_id": catalog.TOKYO.id,
        "useDedicatedIp": True,
        "ssh_key": "ssh-ed25519 AAAAC3Nza test",
        "cloud_init": wolf_user_data(),
    }
    attrs.update(overrides)
    return {
        "data": {
            "type": "virtualmachine",
            "attributes": {k: v for k, v in attrs.items() if v is not None},
        }
    }


class Client:
    def __init__(self, sim: RunningSim, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session
        self.headers = {"Authorization": f"Bearer {sim.token}"}

    async def call(
        self, method: str, path: str, body: Any = None, **kw: Any
    ) -> tuple[int, Any, Any]:
        async with self.session.request(
            method,
            self.sim.base_url + path,
            json=body,
            headers=kw.pop("headers", self.headers),
            **kw,
        ) as resp:
            return resp.status, await resp.json(), resp.headers

    async def create(self, **overrides: Any) -> dict[str, Any]:
        status, body, _ = await self.call("POST", "/instances", vm_body(**overrides))
        assert status == 201, body
        return body["data"]

    async def wolf_state(self, instance_id: str) -> str | None:
        _, vm, _ = await self.call("GET", f"/instances/{instance_id}")
        port = next(p["external_port"] for p in vm["portForwards"] if p["internal_port"] == 47989)
        try:
            async with self.session.get(f"http://{vm['ipAddress']}:{port}/serverinfo") as resp:
                return ET.fromstring(await resp.text()).findtext("state")  # noqa: S314 - our own loopback responder
        except aiohttp.ClientConnectionError:
            return None


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim(token="t0k", seed=7) as running:
        yield running


@pytest.fixture
async def client(sim: RunningSim) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(sim, session)


async def test_locations_cover_several_continents_with_documented_fields(client: Client) -> None:
    status, body, headers = await client.call("GET", "/locations")
    assert status == 200
    assert headers["X-RateLimit-Limit"] == "100000"
    locations = body["data"]["locations"]
    cities = {(loc["city"], loc["stateprovince"], loc["country"]) for loc in locations}
    for expected in [
        ("Dallas", "Texas", "US"),
        ("Tokyo", "Tokyo", "JP"),
        ("Sao Paulo", "Sao Paulo", "BR"),
    ]:
        assert expected in cities
    assert {loc["country"] for loc in locations} >= {"US", "DE", "NL", "GB", "JP", "SG", "AU", "BR"}
    gpu = next(
        g for loc in locations if loc["city"] == "Tokyo" for g in loc["gpus"] if g["v0Name"] == GPU
    )
    assert set(gpu) >= {
        "v0Name",
        "displayName",
        "max_count",
        "price_per_hr",
        "resources",
        "pricing",
        "network_features",
    }
    assert set(gpu["resources"]) == {"max_vcpus", "max_ram_gb", "max_storage_gb"}
    assert set(gpu["pricing"]) == {"per_vcpu_hr", "per_gb_ram_hr", "per_gb_storage_hr"}
    assert gpu["network_features"]["dedicated_ip_available"] is True


async def test_hostnode_filters_and_cpu_only_capacity(client: Client) -> None:
    _, body, _ = await client.call("GET", "/hostnodes", params={"gpu_model": GPU})
    with_gpu = body["data"]["hostnodes"]
    assert with_gpu
    assert all(any(g["v0Name"] == GPU for g in h["available_resources"]["gpus"]) for h in with_gpu)
    _, body, _ = await client.call("GET", "/hostnodes")
    every = body["data"]["hostnodes"]
    assert len(every) == len(catalog.HOSTNODES)
    cpu_only = [h for h in every if not h["available_resources"]["gpus"]]
    assert cpu_only
    assert all(h["available_resources"]["vcpu_count"] > 0 for h in cpu_only)
    assert any(not h["available_resources"]["has_public_ip_available"] for h in every)
    assert all("status" not in h for h in every), "documented hostnodes have no status"
    assert all(h["location"]["uuid"] == h["location_id"] for h in every)
    _, body, _ = await client.call(
        "GET", "/hostnodes", params={"dedicated_ip": "true", "location_id": catalog.DALLAS.id}
    )
    assert [h["id"] for h in body["data"]["hostnodes"]] == [
        next(h.id for h in catalog.HOSTNODES if h.label == "dal-1")
    ]
    status, body, _ = await client.call("GET", f"/hostnodes/{TOKYO_NODE.id}")
    assert status == 200
    assert body["data"]["hostnodes"][0]["location"]["city"] == "Tokyo"
    status, _, _ = await client.call("GET", "/hostnodes/nope")
    assert status == 404


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (
            {
                "resources": {
                    "vcpu_count": 4,
                    "ram_gb": 8,
                    "storage_gb": 50,
                    "gpus": {GPU: {"count": 1}},
                }
            },
            "at least 100",
        ),
        ({"ssh_key_id": "key-1"}, "exactly one of ssh_key"),
        ({"ssh_key": None}, "exactly one of ssh_key"),
        (
            {"resources": {"vcpu_count": 2, "ram_gb": 4, "storage_gb": 100, "gpus": {}}},
            "require at least one GPU",
        ),
        ({"hostnode_id": TOKYO_NODE.id}, "exactly one of location_id"),
        ({"port_forwards": [{"internal_port": 22, "external_port": 20001}]}, "not both"),
        ({"image": "plan9"}, "image must be"),
    ],
)
async def test_create_rejects_documented_rule_violations(
    client: Client, overrides: dict[str, Any], fragment: str
) -> None:
    status, body, _ = await client.call("POST", "/instances", vm_body(**overrides))
    assert status == 400
    assert body["code"] == "VALIDATION_ERROR"
    assert fragment in body["error"]


async def test_full_lifecycle_with_wolf(client: Client, sim: RunningSim) -> None:
    created = await client.create()
    assert created["type"] == "virtualmachine"
    assert created["status"] == "running"  # zero delays
    vm_id = created["id"]
    status, vm, _ = await client.call("GET", f"/instances/{vm_id}")
    assert status == 200
    # A dedicated IP: the VM's own loopback address, Wolf on 47989 there (no forwarding).
    assert ipaddress.ip_address(vm["ipAddress"]).is_loopback
    assert vm["ipAddress"] != "127.0.0.1"
    assert {(p["internal_port"], p["external_port"]) for p in vm["portForwards"]} == {
        (22, 22),
        (47989, 47989),
    }
    assert vm["location"]["city"] == "Tokyo"
    assert vm["price_per_hr"] > 0.35
    assert await client.wolf_state(vm_id) == "SUNSHINE_SERVER_FREE"
    _, listing, _ = await client.call("GET", "/instances")
    assert listing["data"]["instances"] == [
        {
            "type": "virtualmachine",
            "id": vm_id,
            "attributes": {"name": "gamevm-abc", "status": "running"},
        }
    ]

    status, body, _ = await client.call("POST", f"/instances/{vm_id}/stop")
    assert (status, body["data"]["status"]) == (200, "stopping")
    assert (await client.call("GET", f"/instances/{vm_id}"))[1]["status"] == "stopped"
    assert await client.wolf_state(vm_id) is None
    assert (await client.call("POST", f"/instances/{vm_id}/stop"))[0] == 409

    status, body, _ = await client.call("POST", f"/instances/{vm_id}/start")
    assert (status, body["data"]["status"]) == (200, "starting")
    assert await client.wolf_state(vm_id) == "SUNSHINE_SERVER_FREE"
    status, body, _ = await client.call("POST", f"/instances/{vm_id}/start")
    assert status == 409
    assert "already running" in body["error"]

    assert (await client.call("DELETE", f"/instances/{vm_id}"))[0] == 200
    assert (await client.call("GET", f"/instances/{vm_id}"))[0] == 404
    assert (await client.call("DELETE", f"/instances/{vm_id}"))[0] == 404
    assert sim.store.vms[vm_id].wolf is None


async def test_gpu_less_deploy_on_a_cpu_only_hostnode(client: Client) -> None:
    created = await client.create(
        location_id=None,
        hostnode_id=DALLAS_CPU_NODE.id,
        useDedicatedIp=None,
        resources={"vcpu_count": 2, "ram_gb": 4, "storage_gb": 100},
    )
    _, vm, _ = await client.call("GET", f"/instances/{created['id']}")
    assert vm["resources"]["gpus"] == {}
    assert vm["price_per_hr"] == pytest.approx(2 * 0.003 + 4 * 0.002 + 100 * 0.00005)


async def test_dedicated_ip_needs_a_hostnode_that_has_it(client: Client) -> None:
    status, body, _ = await client.call(
        "POST",
        "/instances",
        vm_body(
            location_id=None,
            hostnode_id=DALLAS_CPU_NODE.id,
            resources={"vcpu_count": 2, "ram_gb": 4, "storage_gb": 100},
        ),
    )
    assert status == 400
    assert "dedicated IP" in body["error"]


async def test_capacity_is_finite_and_freed_by_delete(client: Client) -> None:
    node = TOKYO_NODE.id
    ids = [
        (await client.create(location_id=None, hostnode_id=node))["id"]
        for _ in range(TOKYO_NODE.gpus[GPU])
    ]
    status, body, _ = await client.call(
        "POST", "/instances", vm_body(location_id=None, hostnode_id=node)
    )
    assert (status, body["code"]) == (400, "INSUFFICIENT_CAPACITY")
    assert "capacity" in body["error"].lower()
    _, hn, _ = await client.call("GET", f"/hostnodes/{node}")
    assert all(
        g["v0Name"] != GPU for g in hn["data"]["hostnodes"][0]["available_resources"]["gpus"]
    )
    await client.call("DELETE", f"/instances/{ids[0]}")
    await client.create(location_id=None, hostnode_id=node)


async def test_bad_token_is_401_with_rate_limit_headers(client: Client) -> None:
    status, body, headers = await client.call(
        "GET", "/locations", headers={"Authorization": "Bearer wrong"}
    )
    assert status == 401
    assert body["code"] == "UNAUTHORIZED"
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(headers)
    status, _, _ = await client.call("GET", "/locations", headers={})
    assert status == 401


async def test_rate_limit_is_enforced_with_retry_after() -> None:
    async with running_sim(rate_limit_per_minute=3) as sim, aiohttp.ClientSession() as session:
        client = Client(sim, session)
        remaining = [
            int((await client.call("GET", "/locations"))[2]["X-RateLimit-Remaining"])
            for _ in range(3)
        ]
        assert remaining == [2, 1, 0]
        status, body, headers = await client.call("GET", "/locations")
        assert (status, body["code"]) == (429, "RATE_LIMITED")
        assert 1 <= int(headers["Retry-After"]) <= 60


async def test_429_and_5xx_faults_by_count_then_clear(client: Client, sim: RunningSim) -> None:
    sim.faults.configure(
        {"rate_limit_next": 2, "retry_after_s": 3, "errors_next": 1, "error_status": 503},
        merge=False,
    )
    first, second, third, fourth = [await client.call("GET", "/locations") for _ in range(4)]
    assert first[0] == second[0] == 429
    assert first[2]["Retry-After"] == "3"
    assert third[0] == 503
    assert third[1]["code"] == "INTERNAL_ERROR"
    assert fourth[0] == 200
    assert sim.faults.served["429"] == 2
    assert sim.faults.served["5xx"] == 1


async def test_fault_rates_are_seeded_and_reproducible() -> None:
    outcomes = []
    for _ in range(2):
        async with (
            running_sim(seed=42, faults={"error_rate": 0.5}) as sim,
            aiohttp.ClientSession() as session,
        ):
            client = Client(sim, session)
            outcomes.append([(await client.call("GET", "/locations"))[0] for _ in range(20)])
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 500}


async def test_faults_can_be_scoped_to_methods_and_paths(client: Client, sim: RunningSim) -> None:
    sim.faults.configure(
        {"error_rate": 1.0, "methods": ["POST"], "paths": ["/instances"]}, merge=False
    )
    assert (await client.call("GET", "/locations"))[0] == 200
    assert (await client.call("POST", "/instances", vm_body()))[0] == 500
    assert not sim.store.vms


async def test_latency_and_timeout_faults(client: Client, sim: RunningSim) -> None:
    sim.faults.configure({"latency_ms": 150, "jitter_ms": 50}, merge=False)
    started = time.monotonic()
    await client.call("GET", "/locations")
    assert 0.15 <= time.monotonic() - started < 5.0
    sim.faults.configure({"timeouts_next": 1, "timeout_s": 2}, merge=False)
    with pytest.raises(asyncio.TimeoutError):
        await client.call("GET", "/locations", timeout=aiohttp.ClientTimeout(total=0.3))
    assert (await client.call("GET", "/locations"))[0] == 200


@pytest.mark.parametrize("scope", ["global", "location", "hostnode"])
async def test_no_capacity_fault(client: Client, sim: RunningSim, scope: str) -> None:
    faults = {
        "global": {"no_capacity": True},
        "location": {"no_capacity_locations": [catalog.TOKYO.id]},
        "hostnode": {"no_capacity_hostnodes": [TOKYO_NODE.id]},
    }[scope]
    sim.faults.configure(faults, merge=False)
    status, body, _ = await client.call("POST", "/instances", vm_body())
    assert (status, body["code"]) == (400, "INSUFFICIENT_CAPACITY")
    assert body["error"].startswith("Insufficient capacity")
    assert not sim.store.vms
    if scope != "global":  # other places still work
        await client.create(location_id=catalog.DALLAS.id)


@pytest.mark.parametrize(("mode", "expected"), [("drop", None), ("500", 500)])
async def test_crash_after_create_still_creates(
    client: Client, sim: RunningSim, mode: str, expected: int | None
) -> None:
    sim.faults.configure({"crash_after_create_next": 1, "crash_mode": mode}, merge=False)
    if expected is None:
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.call("POST", "/instances", vm_body())
    else:
        assert (await client.call("POST", "/instances", vm_body()))[0] == expected
    ((vm_id, vm),) = sim.store.vms.items()
    assert vm.status == "running"
    _, listing, _ = await client.call("GET", "/instances")
    assert [i["id"] for i in listing["data"]["instances"]] == [vm_id]


async def test_insufficient_balance(client: Client, sim: RunningSim) -> None:
    sim.faults.configure({"balance": 0.5}, merge=False)
    status, body, _ = await client.call("POST", "/instances", vm_body())
    assert (status, body["code"]) == (400, "INSUFFICIENT_BALANCE")


async def test_delays_make_transitions_observable() -> None:
    async with running_sim(delay_scale=0.01) as sim, aiohttp.ClientSession() as session:
        client = Client(sim, session)
        created = await client.create()
        assert created["status"] == "starting"
        assert await client.wolf_state(created["id"]) is None  # still booting
        deadline = time.monotonic() + 5
        while (await client.call("GET", f"/instances/{created['id']}"))[1]["status"] != "running":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        # Running, but the user data is still installing Wolf (CONFIGURE_S x 0.01).
        assert await client.wolf_state(created["id"]) is None
        while await client.wolf_state(created["id"]) != "SUNSHINE_SERVER_FREE":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await client.call("POST", f"/instances/{created['id']}/stop")
        assert (await client.call("GET", f"/instances/{created['id']}"))[1]["status"] == "stopping"


async def test_control_api_wolf_state_instances_and_reset(client: Client, sim: RunningSim) -> None:
    created = await client.create()
    await client.create()  # same name twice: visible to leak/double-create checks
    async with client.session.post(
        f"{sim.root_url}/_sim/instances/gamevm-abc/wolf", json={"state": "busy"}
    ) as resp:
        assert resp.status == 200
        busy_id = (await resp.json())["id"]
    assert await client.wolf_state(busy_id) == "SUNSHINE_SERVER_BUSY"
    await client.call("POST", f"/instances/{busy_id}/stop")
    await client.call("POST", f"/instances/{busy_id}/start")
    assert await client.wolf_state(busy_id) == "SUNSHINE_SERVER_BUSY"  # kept across a reboot
    await client.call("DELETE", f"/instances/{created['id']}")
    async with client.session.get(f"{sim.root_url}/_sim/instances") as resp:
        listing = await resp.json()
    assert listing["counts"] == {
        "created": 2,
        "deleted": 1,
        "live": 1,
        "create_calls": 2,
        "live_by_name": {"gamevm-abc": 1},
    }
    async with client.session.post(f"{sim.root_url}/_sim/reset") as resp:
        assert resp.status == 200
    assert not sim.store.vms


async def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "td.json"
    async with running_sim(state_file=state_file) as sim, aiohttp.ClientSession() as session:
        vm_id = (await Client(sim, session).create())["id"]
    async with running_sim(state_file=state_file) as sim, aiohttp.ClientSession() as session:
        client = Client(sim, session)
        _, vm, _ = await client.call("GET", f"/instances/{vm_id}")
        assert vm["status"] == "running"
        assert await client.wolf_state(vm_id) == "SUNSHINE_SERVER_FREE"


async def test_a_plain_image_never_answers_like_wolf(client: Client, sim: RunningSim) -> None:
    plain = await client.create(cloud_init=None)
    without_wolf = wolf_user_data()
    without_wolf["write_files"] = [
        f for f in without_wolf["write_files"] if f["path"] != "/etc/systemd/system/wolf.service"
    ]
    broken = await client.create(name="gamevm-broken", cloud_init=without_wolf)
    for vm in (plain, broken):
        _, body, _ = await client.call("GET", f"/instances/{vm['id']}")
        assert body["status"] == "running"
        assert await client.wolf_state(vm["id"]) is None
    assert sim.store.vms[plain["id"]].configured
    assert sim.store.vms[broken["id"]].configured


@pytest.fixture
async def reports() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for the operator's report endpoint that records what it receives."""
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(
            {
                "path": request.path,
                "authorization": request.headers.get("Authorization"),
                "body": await request.json(),
            }
        )
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/gamevms/{namespace}/{name}/configuration", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1/gamevms/ns/vm/configuration", received
    finally:
        await runner.cleanup()


async def test_the_user_data_reports_with_its_token_after_wolf_is_up(
    client: Client, reports: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = reports
    created = await client.create(cloud_init=wolf_user_data(url, token="secret-vm-token"))
    deadline = time.monotonic() + 5
    while not received:
        assert time.monotonic() < deadline, "no report"
        await asyncio.sleep(0.02)
    (report,) = received
    assert report["path"] == "/v1/gamevms/ns/vm/configuration"
    assert report["authorization"] == "Bearer secret-vm-token"
    assert report["body"]["gamingEnvironmentReady"] is True
    assert report["body"]["gamesMounted"] is False
    assert await client.wolf_state(created["id"]) == "SUNSHINE_SERVER_FREE"
    # A reboot brings Wolf back (enabled unit) without a second report (cloud-init ran once).
    await client.call("POST", f"/instances/{created['id']}/stop")
    await client.call("POST", f"/instances/{created['id']}/start")
    assert await client.wolf_state(created["id"]) == "SUNSHINE_SERVER_FREE"
    await asyncio.sleep(0.2)
    assert len(received) == 1


async def test_errors_can_come_with_http_200(client: Client, sim: RunningSim) -> None:
    sim.faults.configure({"errors_with_200": True, "balance": 0.5}, merge=False)
    status, body, _ = await client.call("POST", "/instances", vm_body())
    assert status == 200
    assert body["status"] == 400
    assert "need at least $1.00" in body["error"]


@pytest.mark.parametrize(
    ("shape", "path"),
    [
        ("instances", ("data", "instances")),
        ("attributes", ("data", "attributes", "instances")),
        ("flat", ("data",)),
    ],
)
async def test_instance_lists_in_each_shape(
    client: Client, sim: RunningSim, shape: str, path: tuple[str, ...]
) -> None:
    created = await client.create()
    sim.faults.configure({"list_shape": shape}, merge=False)
    _, body, _ = await client.call("GET", "/instances")
    for key in path:
        body = body[key]
    assert isinstance(body, list)
    assert [item["id"] for item in body] == [created["id"]]


async def test_a_reclaimed_gpu_makes_a_stopped_vm_unstartable(
    client: Client, sim: RunningSim
) -> None:
    created = await client.create()
    sim.faults.configure({"reclaim_gpus_on_stop": True}, merge=False)
    await client.call("POST", f"/instances/{created['id']}/stop")
    _, vm, _ = await client.call("GET", f"/instances/{created['id']}")
    assert vm["status"] == "stoppeddisassociated"
    status, body, _ = await client.call("POST", f"/instances/{created['id']}/start")
    assert status == 400
    assert "no longer available" in body["error"]
