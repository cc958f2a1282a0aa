"""Provider selection: preset resolution, filters, ranking, fallback order, errors."""

from typing import Any

import pytest
from geopy.distance import great_circle

from gamevm.models import (
    CloudProvider,
    EmulatorConfigSpec,
    GameVMSpec,
    GpuTier,
    VMPreset,
)
from gamevm.providers.base import Offer
from gamevm.providers.cloudypad.adapter import CloudyPadProvider
from gamevm.services.selection import (
    SelectionError,
    _Distances,
    choose,
    compact,
    plan_selection,
    resolve_preset,
)

TOKYO = {"latitude": 35.68, "longitude": 139.69}
DALLAS = {"latitude": 32.78, "longitude": -96.80}
GCP = CloudProvider.CLOUDYPAD_GCP
AWS = CloudProvider.CLOUDYPAD_AWS
TD = CloudProvider.TENSORDOCK


def config(console: str = "switch", **overrides: Any) -> EmulatorConfigSpec:
    body: dict[str, Any] = {
        "console_type": console,
        "preferred_providers": [
            {"provider": "cloudypad_gcp", "priority": 1, "cost_per_hour_limit": 1.30},
            {"provider": "tensordock", "priority": 2},
            {"provider": "cloudypad_aws", "priority": 3},
        ],
        "default_preset": "premium",
        "min_cpu": 4,
        "min_ram_gb": 8,
        "requires_gpu": True,
        "max_session_hours": 8,
    }
    body.update(overrides)
    return EmulatorConfigSpec.model_validate(body)


def spec(console: str = "switch", **fields: Any) -> GameVMSpec:
    return GameVMSpec.model_validate({"console_type": console, **fields})


def offer(
    provider: CloudProvider,
    region: str,
    lat: float,
    lon: float,
    price: float,
    *,
    available: int = 1,
    tier: GpuTier = GpuTier.HIGH_END,
    vcpu: int = 8,
    ram: int = 16,
    label: str | None = None,
) -> Offer:
    return Offer(
        provider=provider,
        region=region,
        placement_id=f"{region}-p",
        location_label=label or region,
        latitude=lat,
        longitude=lon,
        price_per_hour=price,
        vcpu=vcpu,
        ram_gb=ram,
        gpu_tier=tier,
        available=available,
    )


async def cloudypad_offers(provider: CloudProvider, preset: VMPreset) -> list[Offer]:
    adapter = CloudyPadProvider(
        provider, cli="/nonexistent", credentials={}, timeout=1, power_timeout=1
    )
    from gamevm.models import PRESET_RESOURCES
    from gamevm.providers.base import OfferRequest

    return await adapter.offers(OfferRequest(preset=preset, resources=PRESET_RESOURCES[preset]))


TENSORDOCK_US_OFFERS = [
    offer(TD, "loc-nyc", 40.71, -74.01, 0.50, label="New York, New York, US"),
    offer(TD, "loc-dal", 32.78, -96.80, 0.55, label="Dallas, Texas, US"),
    offer(TD, "loc-chi", 41.88, -87.63, 0.45, label="Chicago, Illinois, US"),
    offer(TD, "loc-lax", 34.05, -118.24, 0.40, label="Los Angeles, California, US"),
]


async def test_switch_player_in_tokyo_with_gcp_preferred_gets_asia_northeast1() -> None:
    plan = plan_selection(config(), spec(user_location=TOKYO))
    assert [q.provider for q in plan.queries] == [GCP, TD, AWS]
    assert plan.queries[0].preset is VMPreset.PREMIUM
    offers = {
        GCP: await cloudypad_offers(GCP, VMPreset.PREMIUM),
        TD: TENSORDOCK_US_OFFERS,
        AWS: await cloudypad_offers(AWS, VMPreset.PREMIUM),
    }
    result = choose(plan, offers)
    chosen = result.require()
    assert chosen.offer.provider is GCP
    assert chosen.offer.region == "asia-northeast1"
    assert chosen.distance_km is not None
    assert chosen.distance_km < 50
    # Fallback order: every GCP offer nearest-first, then TensorDock's, then AWS's.
    providers = [r.offer.provider for r in result.ranked]
    assert providers == sorted(providers, key=[GCP, TD, AWS].index)
    gcp_distances = [r.distance_km for r in result.ranked if r.offer.provider is GCP]
    assert gcp_distances == sorted(gcp_distances)  # type: ignore[type-var]


async def test_dallas_player_gets_nearest_tensordock_hostnode() -> None:
    cfg = config(
        preferred_providers=[{"provider": "tensordock", "priority": 1}],
        cost_per_hour_limit=1.0,
    )
    plan = plan_selection(cfg, spec(user_location=DALLAS))
    result = choose(plan, {TD: TENSORDOCK_US_OFFERS})
    assert result.require().offer.location_label.startswith("Dallas")
    assert [r.offer.region for r in result.ranked] == ["loc-dal", "loc-chi", "loc-lax", "loc-nyc"]


def test_offer_over_cost_cap_is_rejected_with_reason() -> None:
    cfg = config(
        preferred_providers=[
            {"provider": "cloudypad_aws", "priority": 1, "cost_per_hour_limit": 0.60}
        ]
    )
    plan = plan_selection(cfg, spec(user_location=DALLAS))
    expensive = offer(AWS, "us-east-1", 39.0, -77.5, 1.212)
    cheap = offer(AWS, "us-west-2", 45.5, -119.6, 0.55)
    result = choose(plan, {AWS: [expensive, cheap]})
    assert result.require().offer.region == "us-west-2"
    rejected = next(d for d in result.decisions if d.region == "us-east-1")
    assert not rejected.accepted
    assert rejected.reason == "OverCostLimit: 1.21 > 0.60 USD/h"


def test_console_cost_cap_applies_when_tighter_than_provider_cap() -> None:
    cfg = config(
        preferred_providers=[
            {"provider": "cloudypad_aws", "priority": 1, "cost_per_hour_limit": 2}
        ],
        cost_per_hour_limit=0.5,
    )
    plan = plan_selection(cfg, spec())
    assert plan.queries[0].cost_limit == 0.5


def test_disabled_provider_is_never_chosen() -> None:
    cfg = config(
        preferred_providers=[
            {"provider": "cloudypad_gcp", "priority": 1, "enabled": False},
            {"provider": "cloudypad_aws", "priority": 2},
        ]
    )
    plan = plan_selection(cfg, spec(user_location=TOKYO))
    assert [q.provider for q in plan.queries] == [AWS]
    # Even when offers for it are (wrongly) supplied, it is not ranked.
    result = choose(
        plan,
        {
            GCP: [offer(GCP, "asia-northeast1", 35.68, 139.65, 0.1)],
            AWS: [offer(AWS, "eu-west-1", 53.4, -8.2, 1.0)],
        },
    )
    assert {r.offer.provider for r in result.ranked} == {AWS}
    assert any(d.provider is GCP and d.reason == "Disabled" for d in result.decisions)


def test_disabled_provider_requested_explicitly_is_still_not_chosen() -> None:
    cfg = config(
        preferred_providers=[
            {"provider": "cloudypad_gcp", "priority": 1, "enabled": False},
            {"provider": "cloudypad_aws", "priority": 2},
        ]
    )
    result = choose(plan_selection(cfg, spec(provider="cloudypad_gcp")), {})
    assert result.error is not None
    assert "cloudypad_gcp: Disabled" in str(result.error)


def test_all_over_budget_gives_error_naming_each_rejection() -> None:
    cfg = config(
        preferred_providers=[
            {"provider": "cloudypad_gcp", "priority": 1, "cost_per_hour_limit": 0.2},
            {"provider": "tensordock", "priority": 2, "cost_per_hour_limit": 0.2},
            {"provider": "cloudypad_aws", "priority": 3, "enabled": False},
        ]
    )
    plan = plan_selection(cfg, spec(user_location=DALLAS))
    result = choose(
        plan,
        {
            GCP: [offer(GCP, "us-south1", 32.78, -96.81, 0.79)],
            TD: TENSORDOCK_US_OFFERS,
        },
    )
    assert result.ranked == []
    assert result.error is not None
    message = str(result.error)
    assert "cloudypad_gcp: OverCostLimit: 0.79 > 0.20 USD/h" in message
    assert "tensordock: OverCostLimit x4" in message
    assert "cloudypad_aws: Disabled" in message
    with pytest.raises(SelectionError) as raised:
        result.require()
    assert len(raised.value.decisions) == 6


def test_game_override_raises_the_preset() -> None:
    cfg = config(
        "3ds",
        default_preset="advanced",
        game_overrides=[{"game_id": "zelda-ocarina-3d", "preset": "premium"}],
    )
    assert resolve_preset(cfg, None) is VMPreset.ADVANCED
    plan = plan_selection(cfg, spec("3ds", game_id="zelda-ocarina-3d"))
    assert {q.preset for q in plan.queries} == {VMPreset.PREMIUM}
    assert plan.console_preset is VMPreset.PREMIUM
    # Another game keeps the default.
    other = plan_selection(cfg, spec("3ds", game_id="pokemon-x"))
    assert {q.preset for q in other.queries} == {VMPreset.ADVANCED}


def test_provider_preset_override_is_raised_by_game_but_not_lowered() -> None:
    cfg = config(
        "nds",
        default_preset="advanced",
        preferred_providers=[
            {"provider": "tensordock", "priority": 1, "preset_override": "premium"},
            {"provider": "cloudypad_aws", "priority": 2},
        ],
        game_overrides=[{"game_id": "heavy", "preset": "premium"}],
    )
    presets = {q.provider: q.preset for q in plan_selection(cfg, spec("nds")).queries}
    assert presets == {TD: VMPreset.PREMIUM, AWS: VMPreset.ADVANCED}


def test_explicit_provider_is_honoured() -> None:
    plan = plan_selection(config(), spec(provider="cloudypad_aws", user_location=TOKYO))
    assert [q.provider for q in plan.queries] == [AWS]
    reasons = {d.provider: d.reason for d in plan.rejections}
    assert reasons[GCP] == "NotRequested: spec.provider is cloudypad_aws"
    result = choose(plan, {AWS: [offer(AWS, "ap-northeast-1", 35.69, 139.69, 1.2)]})
    assert result.require().offer.provider is AWS


def test_explicit_provider_not_in_config_is_rejected() -> None:
    cfg = config(preferred_providers=[{"provider": "tensordock", "priority": 1}])
    plan = plan_selection(cfg, spec(provider="cloudypad_azure"))
    assert plan.queries == ()
    result = choose(plan, {})
    assert "cloudypad_azure: NotConfigured" in str(result.error)


def test_preset_below_console_minimums_is_rejected_without_offers() -> None:
    cfg = config(
        "gba",
        default_preset="retro",
        min_cpu=4,
        requires_gpu=False,
        preferred_providers=[{"provider": "tensordock", "priority": 1}],
    )
    plan = plan_selection(cfg, spec("gba"))
    assert plan.queries == ()
    assert plan.rejections[0].reason.startswith("BelowMinimums: preset retro: 2 < 4 vCPU")


def test_regions_restriction() -> None:
    cfg = config(
        preferred_providers=[
            {"provider": "tensordock", "priority": 1, "regions": ["loc-nyc", "Chicago"]}
        ]
    )
    plan = plan_selection(cfg, spec(user_location=DALLAS))
    result = choose(plan, {TD: TENSORDOCK_US_OFFERS})
    assert [r.offer.region for r in result.ranked] == ["loc-chi", "loc-nyc"]
    reasons = {d.region: d.reason for d in result.decisions}
    assert reasons["loc-dal"].startswith("RegionNotAllowed: loc-dal")


def test_no_capacity_and_provider_errors_are_reported() -> None:
    plan = plan_selection(config(), spec(user_location=DALLAS))
    result = choose(
        plan,
        {TD: [offer(TD, "loc-dal", 32.78, -96.8, 0.5, available=0)]},
        errors={GCP: "MissingCredentials: Secret lacks GOOGLE_PROJECT"},
    )
    reasons = {d.provider: d.reason for d in result.decisions}
    assert reasons[TD] == "NoCapacity"
    assert reasons[GCP].startswith("ProviderUnavailable: MissingCredentials")
    assert reasons[AWS].startswith("NoOffers")
    assert result.error is not None


def test_lower_gpu_tier_offer_is_rejected() -> None:
    plan = plan_selection(config(), spec())
    weak = offer(TD, "loc-x", 0, 0, 0.2, tier=GpuTier.BASIC)
    result = choose(plan, {TD: [weak]})
    verdict = next(d for d in result.decisions if d.provider is TD)
    assert verdict.reason.startswith("InsufficientResources: GPU basic")


def test_without_location_order_is_priority_then_price() -> None:
    plan = plan_selection(config(), spec())
    result = choose(
        plan,
        {
            TD: TENSORDOCK_US_OFFERS,
            GCP: [offer(GCP, "b", 0, 0, 0.9), offer(GCP, "a", 10, 10, 0.7)],
        },
    )
    assert [r.offer.region for r in result.ranked][:3] == ["a", "b", "loc-lax"]
    assert all(r.distance_km is None for r in result.ranked)


def test_ties_break_by_price_then_region() -> None:
    cfg = config(preferred_providers=[{"provider": "tensordock", "priority": 1}])
    same_place = [
        offer(TD, "z", 32.78, -96.8, 0.5),
        offer(TD, "b", 32.78, -96.8, 0.4),
        offer(TD, "a", 32.78, -96.8, 0.5),
    ]
    ranked = choose(plan_selection(cfg, spec(user_location=DALLAS)), {TD: same_place}).ranked
    assert [r.offer.region for r in ranked] == ["b", "a", "z"]


def test_distance_matches_geopy_great_circle() -> None:
    origin = (35.68, 139.69)
    distances = _Distances(origin)
    for point in [(32.78, -96.8), (-33.87, 151.21), (35.68, 139.69), (-35.0, -40.0)]:
        assert distances.km(*point) == pytest.approx(great_circle(origin, point).km, abs=1e-6)


def test_decision_for_status_is_compact() -> None:
    plan = plan_selection(config(), spec(user_location=DALLAS))
    many = [offer(TD, f"r{i}", 30 + i / 100, -96, 0.5 + i) for i in range(100)]
    result = choose(plan, {TD: many})
    decision = result.provider_decision(limit=10)
    assert decision.chosen_provider is TD
    assert len(decision.candidates) == 10
    assert decision.candidates[0].accepted
    # Rejections of other providers survive the cut next to the best eligible offers.
    assert {c.provider for c in decision.candidates if not c.accepted} == {GCP, AWS}
    assert len(compact(result.decisions, 500)) == len(result.decisions)
    # Round-trips through the status model.
    assert decision.model_dump(by_alias=True)["chosenProvider"] == "tensordock"


def test_failed_placements_are_excluded_with_reason() -> None:
    cfg = config(preferred_providers=[{"provider": "tensordock", "priority": 1}])
    plan = plan_selection(cfg, spec(user_location=DALLAS))
    result = choose(plan, {TD: TENSORDOCK_US_OFFERS}, exclude={"tensordock/loc-dal-p"})
    assert result.require().offer.region == "loc-chi"
    verdict = next(v for v in result.verdicts if v.region == "loc-dal")
    assert verdict.reason == "CreateFailed: an earlier create here failed permanently"
    assert verdict.distance_km is not None
    assert verdict.distance_km < 1  # rejected offers still report their distance
    decision = result.provider_decision(limit=3)
    assert decision.chosen_placement == "loc-chi-p"
    assert len(decision.candidates) == 3
