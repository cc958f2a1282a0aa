"""TensorDock v2 parsing (pure): offers, instances, statuses, ports and error mapping."""

import json
from typing import Any

import pytest

from gamevm.models import PRESET_RESOURCES, CloudProvider, GameVMSpec, GpuTier, VMPreset
from gamevm.models.emulator_config import EmulatorConfigSpec
from gamevm.providers.base import ErrorReason, InstanceState, ProviderError
from gamevm.providers.locations import city_table
from gamevm.providers.tensordock.api import (
    OfferContext,
    build_offers,
    embedded_error_status,
    error_for,
    gpu_tier,
    is_already_gone,
    is_already_in_state,
    map_status,
    parse_hostnodes,
    parse_instance,
    parse_instance_list,
    parse_json,
    parse_locations,
    parse_ports,
)
from gamevm.services.selection import choose, plan_selection

PRICING = {"per_vcpu_hr": 0.003, "per_gb_ram_hr": 0.002, "per_gb_storage_hr": 0.00005}
NET = {"dedicated_ip_available": True, "port_forwarding_available": True}


def location(loc_id: str, city: str, state: str, country: str, gpus: list[str]) -> dict[str, Any]:
    return {
        "id": loc_id,
        "city": city,
        "stateprovince": state,
        "country": country,
        "tier": 3,
        "gpus": [
            {
                "v0Name": g,
                "displayName": g,
                "max_count": 4,
                "price_per_hr": 0.35 if "4090" in g else 0.15,
                "resources": {"max_vcpus": 32, "max_ram_gb": 128, "max_storage_gb": 2000},
                "pricing": PRICING,
                "network_features": NET,
            }
            for g in gpus
        ],
    }


def hostnode(
    host_id: str,
    loc_id: str,
    gpus: dict[str, int],
    *,
    dedicated: bool = True,
    vcpus: int = 32,
    ram: int = 128,
) -> dict[str, Any]:
    return {
        "id": host_id,
        "location_id": loc_id,
        "status": "available",
        "available_resources": {
            "gpus": [
                {"v0Name": g, "availableCount": n, "price_per_hr": 0.35 if "4090" in g else 0.15}
                for g, n in gpus.items()
            ],
            "max_vcpus": vcpus,
            "max_ram_gb": ram,
            "max_vcpus_per_gpu": 16,
            "max_ram_per_gpu": 64,
        },
        "pricing": PRICING,
        "network_features": {**NET, "dedicated_ip_available": dedicated},
    }


RTX4090 = "geforcertx4090-pcie-24gb"
RTX3080 = "geforcertx3080-pcie-10gb"
LOCATIONS = {
    "data": {
        "locations": [
            location("dal", "Dallas", "Texas", "United States", [RTX4090, RTX3080]),
            location("chi", "Chicago", "Illinois", "US", [RTX4090]),
            location("fra", "Frankfurt", "Hesse", "DE", [RTX4090]),
            location("gru", "São Paulo", "São Paulo", "Brazil", [RTX3080]),
        ]
    }
}
HOSTNODES = {
    "data": {
        "hostnodes": [
            hostnode("h-dal", "dal", {RTX4090: 2, RTX3080: 4}),
            hostnode("h-chi", "chi", {RTX4090: 1}),
            hostnode("h-fra", "fra", {RTX4090: 0}),
            hostnode("h-gru", "gru", {RTX3080: 2}, dedicated=False),
            hostnode("h-cpu", "chi", {}, vcpus=6, ram=64),
        ]
    }
}


def offers_for(preset: VMPreset, locations: Any = LOCATIONS, hosts: Any = HOSTNODES) -> list[Any]:
    ctx = OfferContext(
        preset=preset, resources=PRESET_RESOURCES[preset], storage_gb=100, cities=city_table()
    )
    return build_offers(parse_locations(locations), parse_hostnodes(hosts), ctx)


def test_premium_offers_price_capacity_dedicated_ip_and_coordinates() -> None:
    offers = {o.placement_id: o for o in offers_for(VMPreset.PREMIUM)}
    # h-gru lacks a dedicated IP; 3080 is below the premium tier; h-cpu has no GPU.
    assert set(offers) == {"h-dal", "h-chi", "h-fra"}
    dallas = offers["h-dal"]
    # 0.35 GPU + 8 vCPU x 0.003 + 16 GB x 0.002 + 100 GB x 0.00005
    assert dallas.price_per_hour == pytest.approx(0.35 + 0.024 + 0.032 + 0.005)
    assert dallas.gpu_tier is GpuTier.HIGH_END
    assert dallas.gpu_model == RTX4090
    assert dallas.available == 2
    assert (dallas.latitude, dallas.longitude) == pytest.approx((32.78, -96.80))
    assert dallas.region == "us-central"
    assert dallas.details["location_id"] == "dal"
    assert dallas.details["hostnode_id"] == "h-dal"
    assert dallas.location_label == "Dallas, Texas, United States"
    assert offers["h-fra"].available == 0
    assert offers["h-chi"].latitude == pytest.approx(41.88)


def test_gpu_capacity_is_capped_by_free_vcpu_and_ram() -> None:
    hosts = {"data": {"hostnodes": [hostnode("h-dal", "dal", {RTX4090: 4}, vcpus=8, ram=64)]}}
    (offer,) = offers_for(VMPreset.PREMIUM, LOCATIONS, hosts)
    assert offer.available == 1  # 4 free GPUs but only 8 free vCPUs
    starved = {"data": {"hostnodes": [hostnode("h-dal", "dal", {RTX4090: 4}, vcpus=4)]}}
    (none_left,) = offers_for(VMPreset.PREMIUM, LOCATIONS, starved)
    assert none_left.available == 0


def test_advanced_offers_include_higher_tiers() -> None:
    models = sorted((o.placement_id, o.gpu_model) for o in offers_for(VMPreset.ADVANCED))
    assert ("h-dal", RTX3080) in models
    assert ("h-dal", RTX4090) in models


def test_retro_offers_are_cpu_only_hostnode_deploys() -> None:
    offers = {o.placement_id: o for o in offers_for(VMPreset.RETRO)}
    assert "h-gru" not in offers  # no dedicated IP
    cpu = offers["h-cpu"]
    assert cpu.gpu_tier is GpuTier.NONE
    assert cpu.gpu_model is None
    assert cpu.available == 3  # 6 free vCPU / 2 per VM
    assert cpu.price_per_hour == pytest.approx(2 * 0.003 + 4 * 0.002 + 100 * 0.00005)


def test_dallas_player_gets_the_dallas_hostnode() -> None:
    config = EmulatorConfigSpec.model_validate(
        {
            "console_type": "gamecube",
            "preferred_providers": [{"provider": "tensordock", "priority": 1}],
            "default_preset": "premium",
            "min_cpu": 4,
            "min_ram_gb": 8,
            "requires_gpu": True,
            "max_session_hours": 4,
        }
    )
    spec = GameVMSpec.model_validate(
        {"console_type": "gamecube", "user_location": {"latitude": 32.9, "longitude": -97.0}}
    )
    plan = plan_selection(config, spec)
    result = choose(plan, {CloudProvider.TENSORDOCK: offers_for(plan.queries[0].preset)})
    assert result.require().offer.placement_id == "h-dal"
    reasons = {d.region: d.reason for d in result.decisions}
    assert reasons["eu-central"] == "NoCapacity"  # Frankfurt


def test_third_party_shapes_flat_lists_and_maps() -> None:
    locations = [location("dal", "Dallas", "TX", "USA", [RTX4090])]
    hosts = {
        "hostnodes": {
            "h1": {
                "locationId": "dal",
                "availableResources": {
                    "gpus": [{"v0Name": RTX4090, "availableCount": 1, "pricePerHr": 0.4}],
                },
                "pricing": {"perVcpuHr": 0.003, "perGbRamHr": 0.002, "perGbStorageHr": 0.0},
            }
        }
    }
    (offer,) = offers_for(VMPreset.PREMIUM, {"data": locations}, hosts)
    assert offer.placement_id == "h1"
    assert offer.price_per_hour == pytest.approx(0.4 + 0.024 + 0.032)
    assert offer.location_label.startswith("Dallas")


def test_unknown_city_falls_back_to_country_and_unknown_country_is_skipped() -> None:
    locs = {
        "data": {
            "locations": [
                location("x", "Smallville", "", "Germany", [RTX4090]),
                location("y", "Atlantis", "", "Nowhere", [RTX4090]),
            ]
        }
    }
    hosts = {
        "data": {
            "hostnodes": [hostnode("hx", "x", {RTX4090: 1}), hostnode("hy", "y", {RTX4090: 1})]
        }
    }
    (offer,) = offers_for(VMPreset.PREMIUM, locs, hosts)
    assert offer.placement_id == "hx"
    assert offer.latitude == pytest.approx(51.17)


@pytest.mark.parametrize(
    ("model", "tier"),
    [
        ("geforcertx4090-pcie-24gb", GpuTier.HIGH_END),
        ("rtxa6000-pcie-48gb", GpuTier.HIGH_END),
        ("geforcertx3080-pcie-10gb", GpuTier.BASIC),
        ("rtxa4000-pcie-16gb", GpuTier.BASIC),
        ("NVIDIA Tesla T4", GpuTier.BASIC),
        ("a100-sxm4-80gb", None),
        ("h100-sxm5-80gb", None),
        ("mystery-gpu", None),
    ],
)
def test_gpu_tier_table(model: str, tier: GpuTier | None) -> None:
    assert gpu_tier(model) is tier


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("running", InstanceState.RUNNING),
        ("Running", InstanceState.RUNNING),
        ("starting", InstanceState.STARTING),
        ("stopping", InstanceState.STOPPING),
        ("stopped", InstanceState.STOPPED),
        ("stoppeddisassociated", InstanceState.STOPPED),
        ("StoppedDisassociated", InstanceState.STOPPED),
        ("Stopped_Disassociated", InstanceState.STOPPED),
        ("weird", InstanceState.UNKNOWN),
    ],
)
def test_status_mapping(raw: str, state: InstanceState) -> None:
    assert map_status(raw) is state


def test_parse_instance_flat_documented_shape() -> None:
    body = {
        "type": "virtualmachine",
        "id": "vm-1",
        "name": "gvm-abc",
        "status": "running",
        "ipAddress": "203.0.113.7",
        "portForwards": [
            {"internal_port": 22, "external_port": 20022},
            {"internal_port": 47989, "external_port": 20989},
        ],
        "hostnode_id": "h-dal",
        "location_id": "dal",
        "price_per_hr": 0.41,
    }
    instance = parse_instance(body)
    assert instance.instance_id == "vm-1"
    assert instance.state is InstanceState.RUNNING
    assert instance.ip_address == "203.0.113.7"
    assert instance.wolf_http_port == 20989
    assert instance.external_port(22) == 20022
    assert instance.external_port(48010) == 48010
    assert instance.price_per_hour == 0.41
    assert instance.metadata["hostnode_id"] == "h-dal"


def test_parse_instance_jsonapi_snake_and_camel() -> None:
    body = {
        "data": {
            "type": "virtualmachine",
            "id": "vm-2",
            "attributes": {
                "name": "n",
                "status": "StoppedDisassociated",
                "ip_address": "198.51.100.1",
                "port_forwards": [{"internalPort": 47989, "externalPort": 30000}],
            },
        }
    }
    instance = parse_instance(body)
    assert (instance.instance_id, instance.name) == ("vm-2", "n")
    assert instance.state is InstanceState.STOPPED
    assert instance.ip_address == "198.51.100.1"
    assert instance.ports == {47989: 30000}


def test_v0_port_forward_map_keys_are_external() -> None:
    assert parse_ports({"30118": "22", "30117": "80"}) == {22: 30118, 80: 30117}


def test_parse_instance_list_documented_and_flat() -> None:
    documented = {
        "data": {
            "instances": [
                {
                    "type": "virtualmachine",
                    "id": "a",
                    "attributes": {"name": "x", "status": "running"},
                }
            ]
        }
    }
    flat = {"data": [{"id": "b", "name": "y", "status": "stopped"}]}
    assert [(i.id, i.name) for i in parse_instance_list(documented)] == [("a", "x")]
    assert [(i.id, i.status) for i in parse_instance_list(flat)] == [("b", "stopped")]


def test_malformed_json_is_bad_response() -> None:
    with pytest.raises(ProviderError) as raised:
        parse_json("<html>oops</html>", "list hostnodes")
    assert raised.value.reason is ErrorReason.BAD_RESPONSE
    with pytest.raises(ProviderError) as empty:
        parse_instance([1, 2])
    assert empty.value.reason is ErrorReason.BAD_RESPONSE


def body(message: str, code: str = "X") -> str:
    return json.dumps({"status": 0, "code": code, "error": message})


@pytest.mark.parametrize(
    ("status", "text", "reason", "retryable"),
    [
        (401, body("Invalid or missing bearer token"), ErrorReason.UNAUTHORIZED, False),
        (403, body("forbidden"), ErrorReason.UNAUTHORIZED, False),
        (429, body("Too many requests"), ErrorReason.RATE_LIMITED, True),
        (500, body("boom"), ErrorReason.SERVER_ERROR, True),
        (503, "<html>down</html>", ErrorReason.SERVER_ERROR, True),
        (
            400,
            body("Insufficient capacity: hostnode h cannot host"),
            ErrorReason.NO_CAPACITY,
            False,
        ),
        (400, body("name is required"), ErrorReason.INVALID_REQUEST, False),
        (404, body("Instance x not found"), ErrorReason.NOT_FOUND, False),
        (409, body("Instance cannot start while stopping"), ErrorReason.CONFLICT, True),
    ],
)
def test_error_mapping(status: int, text: str, reason: ErrorReason, retryable: bool) -> None:
    error = error_for(status, text, "create x", retry_after=3.0)
    assert error.reason is reason
    assert error.retryable is retryable
    assert f"HTTP {status}" in error.message
    assert error.retry_after == (3.0 if retryable else None)


def test_jsonapi_error_bodies() -> None:
    text = json.dumps({"errors": [{"detail": "Not enough GPUs available"}]})
    assert error_for(400, text, "create").reason is ErrorReason.NO_CAPACITY


def test_idempotency_helpers() -> None:
    assert is_already_in_state(409, body("Instance is already running"))
    assert is_already_in_state(400, body("VM already stopped"))
    assert is_already_in_state(409, "")
    assert not is_already_in_state(409, body("Instance cannot stop while starting"))
    assert is_already_gone(404, body("Instance not found"))
    assert is_already_gone(400, body("Instance already terminated"))
    assert not is_already_gone(500, body("not found upstream"))


def documented_hostnode(host_id: str, loc_id: str, *, public_ip: bool) -> dict[str, Any]:
    """The hostnode fields reference section 0 lists: no `status`, no network_features."""
    return {
        "id": host_id,
        "location": {"uuid": loc_id, "city": "Dallas", "stateprovince": "Texas"},
        "available_resources": {
            "has_public_ip_available": public_ip,
            "vcpu_count": 32,
            "ram_gb": 128,
            "storage_gb": 2000,
            "available_ports": [20000, 20001],
            "gpus": [{"v0Name": RTX4090, "availableCount": 2, "price_per_hr": 0.35}],
        },
        "pricing": PRICING,
    }


def test_per_hostnode_public_ip_flag_decides_dedicated_ip_placement() -> None:
    # The location says dedicated IPs exist somewhere; the hostnode says not here.
    hosts = {
        "data": {
            "hostnodes": [
                documented_hostnode("h-yes", "dal", public_ip=True),
                documented_hostnode("h-no", "dal", public_ip=False),
            ]
        }
    }
    offers = offers_for(VMPreset.PREMIUM, hosts=hosts)
    assert {o.placement_id for o in offers} == {"h-yes"}
    retro = offers_for(VMPreset.RETRO, hosts=hosts)
    assert {o.placement_id for o in retro} == {"h-yes"}
    parsed = {h.id: h for h in parse_hostnodes(hosts)}
    assert parsed["h-yes"].location_id == "dal"
    assert parsed["h-yes"].available_vcpus == 32
    assert parsed["h-no"].usable, "no `status` field: usable"


def test_instance_list_all_three_shapes_and_no_invented_ids() -> None:
    item = {"type": "virtualmachine", "id": "i-1", "attributes": {"name": "x", "status": "running"}}
    shapes = [
        {"data": {"instances": [item]}},
        {"data": {"attributes": {"instances": [item]}}},
        {"data": [{"id": "i-1", "name": "x", "status": "running"}]},
    ]
    for shape in shapes:
        assert [(i.id, i.name) for i in parse_instance_list(shape)] == [("i-1", "x")], shape
    # Bodies that are no list at all never become instances named after their keys.
    for body_ in (
        {"data": {"type": "virtualmachine", "attributes": {"name": "x"}}},
        {"data": {"attributes": {"total": 0}}},
        {"status": 400, "error": "bad"},
    ):
        assert parse_instance_list(body_) == [], body_


def test_rate_hourly_is_the_price() -> None:
    instance = parse_instance({"id": "i", "status": "running", "rateHourly": 0.512})
    assert instance.price_per_hour == 0.512


@pytest.mark.parametrize(
    ("text", "status"),
    [
        (json.dumps({"status": 400, "error": "Insufficient balance: need at least $1"}), 400),
        (json.dumps({"error": "something failed"}), 400),
        (json.dumps({"success": False, "message": "nope"}), 400),
        (json.dumps({"data": {"id": "i", "status": "running"}}), None),
        (json.dumps({"id": "i", "status": "running"}), None),
        (json.dumps([1, 2]), None),
        ("not json", None),
    ],
)
def test_errors_inside_2xx_bodies(text: str, status: int | None) -> None:
    assert embedded_error_status(text) == status


def test_insufficient_balance_is_permanent_and_named() -> None:
    text = json.dumps({"status": 400, "error": "Insufficient balance: need at least $1.00"})
    error = error_for(400, text, "create x")
    assert error.reason is ErrorReason.INSUFFICIENT_BALANCE
    assert not error.retryable
    assert error_for(402, body("Payment required"), "create").reason is (
        ErrorReason.INSUFFICIENT_BALANCE
    )


def test_a_list_entry_that_carries_an_ip_keeps_it_in_any_shape() -> None:
    attributes = {
        "name": "x",
        "status": "running",
        "ipAddress": "203.0.113.7",
        "portForwards": [{"internal_port": 47989, "external_port": 40001}],
    }
    item = {"type": "virtualmachine", "id": "i-1", "attributes": attributes}
    shapes = [
        {"data": {"instances": [item]}},
        {"data": {"attributes": {"instances": [item]}}},
        {"data": [{"id": "i-1", **attributes}]},
    ]
    for shape in shapes:
        (summary,) = parse_instance_list(shape)
        assert summary.ip_address == "203.0.113.7", shape
        assert summary.ports == {47989: 40001}, shape
    documented = {"type": "virtualmachine", "id": "i-2", "attributes": {"name": "y"}}
    (bare,) = parse_instance_list({"data": {"instances": [documented]}})
    assert bare.ip_address is None
    assert bare.ports == {}
