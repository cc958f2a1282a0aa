"""Provider selection: pure (no I/O), in two steps so the caller fetches offers itself.

1. `plan_selection(config, spec)` resolves the preset per provider and returns, for every
   enabled provider in priority order, the `OfferRequest` to ask it, plus the rejections
   that need no offers (disabled, not the provider the GameVM asked for, preset below the
   console's minimums).
2. `choose(plan, offers, errors)` filters the fetched offers (regions, capabilities,
   cost caps, capacity) and ranks the eligible ones: all offers of the highest-priority
   provider nearest-first, then the next provider's (the fallback order). Every
   candidate gets a verdict for the status. Nothing eligible -> `result.error` names
   each rejection.

Preset: the provider's `presetOverride`, else the console's `defaultPreset`; a matching
`gameOverrides` entry for `spec.gameId` is a minimum that raises either (a heavy game is
never given a smaller VM because a provider prefers one).

Regions: adapters return offers in every region (`OfferRequest.regions` is only a hint);
selection enforces the restriction so each excluded placement shows as RegionNotAllowed.
A restriction matches an offer's region, placement id (zone, hostnode), city or location id.

Verdict order: per provider in priority order, its eligible offers (ranked) then its
rejected ones; then the plan's rejections (Disabled, NotRequested, BelowMinimums).
Verdicts of rejected offers (reason, distance) are worked out lazily, when `verdicts`,
`decisions` or `provider_decision()` is first read: ranking stays within its budget.

Distance: great-circle kilometres, the formula and Earth radius of
`geopy.distance.great_circle` (a unit test pins them equal), inlined and memoised per
coordinate because geopy's object-per-call API costs ~13 us per offer. Without a user
location the order within a provider is by price.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import NamedTuple, Protocol, TypeVar

from geopy.distance import EARTH_RADIUS as GEOPY_EARTH_RADIUS

from gamevm.models.emulator_config import EmulatorConfigSpec, ProviderPreference
from gamevm.models.enums import CloudProvider, GpuTier, VMPreset
from gamevm.models.gamevm import CandidateDecision, ProviderDecision, VMCreateRequest
from gamevm.models.presets import PRESET_RESOURCES, gpu_rank, larger_preset
from gamevm.providers.base import Offer, OfferRequest

ELIGIBLE = "Eligible"
EARTH_RADIUS_KM: float = float(GEOPY_EARTH_RADIUS)


@dataclass(frozen=True)
class ProviderQuery:
    """What to ask one enabled provider, and the limits its offers must meet."""

    provider: CloudProvider
    priority: int
    preset: VMPreset
    request: OfferRequest
    cost_limit: float | None
    """The tighter of the provider's and the console's cost_per_hour_limit."""
    regions: tuple[str, ...] | None


@dataclass(frozen=True)
class SelectionPlan:
    """Step 1's output: queries in priority order and rejections needing no offers."""

    queries: tuple[ProviderQuery, ...]
    rejections: tuple[CandidateDecision, ...]
    console_preset: VMPreset
    user_location: tuple[float, float] | None


class RankedOffer(NamedTuple):
    """One eligible offer in fallback order."""

    offer: Offer
    preset: VMPreset
    priority: int
    distance_km: float | None


class Verdict(NamedTuple):
    """One candidate and why it was accepted or rejected (cheap; see `to_model`)."""

    provider: CloudProvider
    region: str | None
    preset: VMPreset | None
    cost_per_hour: float | None
    distance_km: float | None
    reason: str

    @property
    def accepted(self) -> bool:
        """Whether the candidate was eligible."""
        return self.reason == ELIGIBLE

    def to_model(self) -> CandidateDecision:
        """The status model of this verdict."""
        return CandidateDecision(
            provider=self.provider,
            region=self.region,
            preset=self.preset,
            cost_per_hour=self.cost_per_hour,
            distance_km=None if self.distance_km is None else round(self.distance_km, 1),
            accepted=self.accepted,
            reason=self.reason,
        )

    @classmethod
    def from_model(cls, decision: CandidateDecision) -> "Verdict":
        """A verdict from a status model (plan rejections)."""
        return cls(
            provider=decision.provider,
            region=decision.region,
            preset=decision.preset,
            cost_per_hour=decision.cost_per_hour,
            distance_km=decision.distance_km,
            reason=decision.reason,
        )


class SelectionError(Exception):
    """No provider can host the VM; the message names every rejection."""

    def __init__(self, message: str, verdicts: Sequence[Verdict]) -> None:
        super().__init__(message)
        self.verdicts = list(verdicts)

    @property
    def decisions(self) -> list[CandidateDecision]:
        """Every rejection as a status model."""
        return [v.to_model() for v in self.verdicts]

    def provider_decision(
        self, decided_at: datetime | None = None, *, limit: int = 20
    ) -> ProviderDecision:
        """The (failed) decision for the status."""
        candidates = [v.to_model() for v in compact(self.verdicts, limit)]
        return ProviderDecision(candidates=candidates, decided_at=decided_at)


@dataclass
class SelectionResult:
    """Step 2's output: ranked eligible offers and a verdict for every candidate.

    Verdicts are kept as light `Verdict`s; `decisions` builds the status models on demand
    (thousands of pydantic objects would blow the selection time budget).
    """

    ranked: list[RankedOffer]
    segments: list["_Segment"] = field(default_factory=list, repr=False)
    """Verdicts in compact form, expanded by `verdicts` on first use."""
    error: SelectionError | None = None

    @cached_property
    def verdicts(self) -> list[Verdict]:
        """Every candidate's verdict: per provider, eligible (ranked) then rejected."""
        return _expand(self.segments)

    @property
    def chosen(self) -> RankedOffer | None:
        """The first offer to try, or None."""
        return self.ranked[0] if self.ranked else None

    @property
    def decisions(self) -> list[CandidateDecision]:
        """A CandidateDecision for every candidate, in order (eligible ones first)."""
        return [v.to_model() for v in self.verdicts]

    def require(self) -> RankedOffer:
        """The first offer to try; raises SelectionError when there is none."""
        if self.error is not None or not self.ranked:
            raise self.error or SelectionError("no eligible placement", self.verdicts)
        return self.ranked[0]

    def provider_decision(
        self, decided_at: datetime | None = None, *, limit: int = 20
    ) -> ProviderDecision:
        """The decision for the status, with at most `limit` candidates (see `compact`)."""
        chosen = self.chosen
        return ProviderDecision(
            chosen_provider=chosen.offer.provider if chosen else None,
            chosen_region=chosen.offer.region if chosen else None,
            chosen_placement=chosen.offer.placement_id if chosen else None,
            candidates=[v.to_model() for v in compact(self.verdicts, limit)],
            decided_at=decided_at,
        )


# ---------------------------------------------------------------------------------------
# Step 1


def resolve_preset(
    config: EmulatorConfigSpec, game_id: str | None, entry: ProviderPreference | None = None
) -> VMPreset:
    """Preset for one provider: its override or the console default, raised by the game."""
    preset = entry.preset_override if entry and entry.preset_override else config.default_preset
    if game_id:
        for override in config.game_overrides:
            if override.game_id == game_id:
                preset = larger_preset(preset, override.preset)
    return preset


def below_minimums(config: EmulatorConfigSpec, preset: VMPreset) -> str | None:
    """Why the preset cannot satisfy the console's minimums, or None."""
    res = PRESET_RESOURCES[preset]
    gaps = []
    if res.vcpu < config.min_cpu:
        gaps.append(f"{res.vcpu} < {config.min_cpu} vCPU")
    if res.ram_gb < config.min_ram_gb:
        gaps.append(f"{res.ram_gb} < {config.min_ram_gb} GB RAM")
    if config.requires_gpu and res.gpu is GpuTier.NONE:
        gaps.append("no GPU but the console requires one")
    return f"BelowMinimums: preset {preset}: {', '.join(gaps)}" if gaps else None


def _tighter(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _reject(provider: CloudProvider, preset: VMPreset | None, reason: str) -> CandidateDecision:
    return CandidateDecision(provider=provider, preset=preset, accepted=False, reason=reason)


def plan_selection(config: EmulatorConfigSpec, spec: VMCreateRequest) -> SelectionPlan:
    """Which providers to ask for offers (priority order), and who is out already."""
    queries: list[ProviderQuery] = []
    rejections: list[CandidateDecision] = []
    entries = config.providers_by_priority()
    wanted = spec.provider
    if wanted is not None and all(e.provider is not wanted for e in entries):
        rejections.append(
            _reject(
                wanted,
                None,
                f"NotConfigured: {wanted} is not in the {config.console_type} "
                "EmulatorConfig's preferredProviders",
            )
        )
    for entry in entries:
        preset = resolve_preset(config, spec.game_id, entry)
        if not entry.enabled:
            rejections.append(_reject(entry.provider, preset, "Disabled"))
            continue
        if wanted is not None and entry.provider is not wanted:
            rejections.append(
                _reject(entry.provider, preset, f"NotRequested: spec.provider is {wanted}")
            )
            continue
        gap = below_minimums(config, preset)
        if gap is not None:
            rejections.append(_reject(entry.provider, preset, gap))
            continue
        regions = tuple(entry.regions) if entry.regions else None
        queries.append(
            ProviderQuery(
                provider=entry.provider,
                priority=entry.priority,
                preset=preset,
                request=OfferRequest(
                    preset=preset, resources=PRESET_RESOURCES[preset], regions=regions
                ),
                cost_limit=_tighter(entry.cost_per_hour_limit, config.cost_per_hour_limit),
                regions=regions,
            )
        )
    location = spec.user_location.as_tuple() if spec.user_location else None
    return SelectionPlan(
        queries=tuple(queries),
        rejections=tuple(rejections),
        console_preset=resolve_preset(config, spec.game_id),
        user_location=location,
    )


# ---------------------------------------------------------------------------------------
# Step 2


class _Distances:
    """Great-circle km from one point, memoised per coordinate."""

    def __init__(self, origin: tuple[float, float]) -> None:
        self._lat = math.radians(origin[0])
        self._lon = math.radians(origin[1])
        self._cos_lat = math.cos(self._lat)
        self.memo: dict[tuple[float, float], float] = {}

    def km(self, lat: float, lon: float) -> float:
        key = (lat, lon)
        cached = self.memo.get(key)
        if cached is not None:
            return cached
        lat2, lon2 = math.radians(lat), math.radians(lon)
        # geopy's great_circle: atan2 form of the spherical law (stable at all distances).
        sin_dlon, cos_dlon = math.sin(lon2 - self._lon), math.cos(lon2 - self._lon)
        sin_lat1, sin_lat2 = math.sin(self._lat), math.sin(lat2)
        cos_lat2 = math.cos(lat2)
        y = math.hypot(
            cos_lat2 * sin_dlon, self._cos_lat * sin_lat2 - sin_lat1 * cos_lat2 * cos_dlon
        )
        x = sin_lat1 * sin_lat2 + self._cos_lat * cos_lat2 * cos_dlon
        distance = EARTH_RADIUS_KM * math.atan2(y, x)
        self.memo[key] = distance
        return distance


def _normalize(text: str) -> str:
    return text.strip().lower()


def placement_key(offer: Offer) -> str:
    """'provider/placement': how failed placements are remembered (status)."""
    return f"{offer.provider}/{offer.placement_id}"


@dataclass(frozen=True)
class _Rules:
    """One query's filters, precomputed for the hot loop."""

    query: ProviderQuery
    allowed: frozenset[str] | None
    min_vcpu: int
    min_ram: int
    min_gpu_rank: int
    excluded: frozenset[str]


_GPU_RANK = {tier: gpu_rank(tier) for tier in GpuTier}


def _rules(query: ProviderQuery, excluded: frozenset[str]) -> _Rules:
    need = PRESET_RESOURCES[query.preset]
    return _Rules(
        query=query,
        allowed=frozenset(_normalize(r) for r in query.regions) if query.regions else None,
        min_vcpu=need.vcpu,
        min_ram=need.ram_gb,
        min_gpu_rank=_GPU_RANK[need.gpu],
        excluded=excluded,
    )


def _verdict(offer: Offer, rules: _Rules) -> str:
    return _fit_reason(offer, rules) or _market_reason(offer, rules) or ELIGIBLE


def _fit_reason(offer: Offer, rules: _Rules) -> str | None:
    """Where and what: region restriction, then the preset's resources."""
    query = rules.query
    if rules.allowed is not None:
        city = offer.location_label.split(",", 1)[0]
        location = offer.details.get("location_id", "")
        if not any(
            _normalize(v) in rules.allowed
            for v in (offer.region, offer.placement_id, city, location)
        ):
            return f"RegionNotAllowed: {offer.region} not in {', '.join(query.regions or ())}"
    if offer.vcpu < rules.min_vcpu or offer.ram_gb < rules.min_ram:
        return f"InsufficientResources: {offer.vcpu} vCPU/{offer.ram_gb} GB < preset {query.preset}"
    if _GPU_RANK[offer.gpu_tier] < rules.min_gpu_rank:
        return f"InsufficientResources: GPU {offer.gpu_tier} < preset {query.preset}"
    return None


def _market_reason(offer: Offer, rules: _Rules) -> str | None:
    """Price cap, capacity, and placements that already failed."""
    limit = rules.query.cost_limit
    if limit is not None and offer.price_per_hour > limit:
        return f"OverCostLimit: {offer.price_per_hour:.2f} > {limit:.2f} USD/h"
    if offer.available <= 0:
        return "NoCapacity"
    if rules.excluded and placement_key(offer) in rules.excluded:
        return "CreateFailed: an earlier create here failed permanently"
    return None


def choose(
    plan: SelectionPlan,
    offers: Mapping[CloudProvider, Sequence[Offer]],
    errors: Mapping[CloudProvider, object] | None = None,
    *,
    exclude: Iterable[str] = (),
) -> SelectionResult:
    """Rank the fetched offers.

    `errors`: providers whose offers could not be fetched (message or exception).
    `exclude`: 'provider/placement' keys (`placement_key`) whose create failed
    permanently, e.g. status.decision.failedPlacements: they are rejected, so the next
    candidate is the fallback.
    """
    errors = errors or {}
    excluded = frozenset(exclude)
    distances = _Distances(plan.user_location) if plan.user_location else None
    segments: list[_Segment] = []
    ranked: list[RankedOffer] = []
    for query in plan.queries:
        if query.provider in errors:
            reason = f"ProviderUnavailable: {errors[query.provider]}"
            segments.append(Verdict(query.provider, None, query.preset, None, None, reason))
            continue
        provider_offers = [
            o for o in offers.get(query.provider, ()) if o.provider is query.provider
        ]
        if not provider_offers:
            reason = f"NoOffers: {query.provider} has no placement for preset {query.preset}"
            segments.append(Verdict(query.provider, None, query.preset, None, None, reason))
            continue
        rules = _rules(query, excluded)
        eligible, rejected = _judge(provider_offers, rules, distances)
        ranked.extend(eligible)
        segments.append((rules, distances, eligible, rejected))
    segments.extend(Verdict.from_model(r) for r in plan.rejections)
    result = SelectionResult(ranked=ranked, segments=segments)
    if not ranked:
        result.error = SelectionError(_summary(plan, result.verdicts), result.verdicts)
    return result


_Segment = Verdict | tuple["_Rules", "_Distances | None", list[RankedOffer], list[Offer]]


def _expand(segments: Sequence[_Segment]) -> list[Verdict]:
    verdicts: list[Verdict] = []
    for segment in segments:
        if isinstance(segment, Verdict):
            verdicts.append(segment)
            continue
        rules, distances, eligible, rejected = segment
        preset = rules.query.preset
        verdicts.extend(
            Verdict(
                r.offer.provider,
                r.offer.region,
                preset,
                r.offer.price_per_hour,
                r.distance_km,
                ELIGIBLE,
            )
            for r in eligible
        )
        verdicts.extend(
            Verdict(
                o.provider,
                o.region,
                preset,
                o.price_per_hour,
                distances.km(o.latitude, o.longitude) if distances else None,
                _verdict(o, rules),
            )
            for o in rejected
        )
    return verdicts


def _judge(
    provider_offers: Sequence[Offer], rules: _Rules, distances: _Distances | None
) -> tuple[list[RankedOffer], list[Offer]]:
    # The hot loop of selection: the common eligible case is decided inline; distances
    # are computed for eligible offers only, and rejected offers get their reason (and
    # distance, for the status) later, in _expand, only if somebody asks.
    query = rules.query
    preset, priority, limit = query.preset, query.priority, query.cost_limit
    min_vcpu, min_ram, min_gpu = rules.min_vcpu, rules.min_ram, rules.min_gpu_rank
    simple = rules.allowed is None and not rules.excluded
    km = distances.km if distances else None
    memo = distances.memo if distances else {}
    scored: list[tuple[float, float, str, str, Offer]] = []
    rejected: list[Offer] = []
    for offer in provider_offers:
        price = offer.price_per_hour
        if (
            not (
                simple
                and offer.available > 0
                and (limit is None or price <= limit)
                and offer.vcpu >= min_vcpu
                and offer.ram_gb >= min_ram
                and _GPU_RANK[offer.gpu_tier] >= min_gpu
            )
            and _verdict(offer, rules) is not ELIGIBLE
        ):
            rejected.append(offer)
            continue
        distance = 0.0
        if km is not None:
            cached = memo.get((offer.latitude, offer.longitude))
            distance = km(offer.latitude, offer.longitude) if cached is None else cached
        scored.append((distance, price, offer.region, offer.placement_id, offer))
    scored.sort(key=_rank_key)
    located = km is not None
    eligible = [RankedOffer(s[4], preset, priority, s[0] if located else None) for s in scored]
    return eligible, rejected


def _rank_key(entry: tuple[float, float, str, str, Offer]) -> tuple[float, float, str, str]:
    return entry[0], entry[1], entry[2], entry[3]


def _reason_code(reason: str) -> str:
    return reason.split(":", 1)[0]


def _summary(plan: SelectionPlan, verdicts: Sequence[Verdict]) -> str:
    """'No eligible placement ...: tensordock: OverCostLimit x3 (e.g. ...); ...'."""
    groups: dict[tuple[CloudProvider, str], list[Verdict]] = {}
    for verdict in verdicts:
        groups.setdefault((verdict.provider, _reason_code(verdict.reason)), []).append(verdict)
    parts = []
    for (provider, code), items in groups.items():
        example = items[0].reason
        detail = f"{code} x{len(items)} (e.g. {example})" if len(items) > 1 else example
        parts.append(f"{provider}: {detail}")
    if not parts:
        parts.append("no provider is configured")
    return f"No eligible placement (console preset {plan.console_preset}): " + "; ".join(parts)


class Judged(Protocol):
    """Anything with a verdict: `Verdict` or `CandidateDecision`."""

    @property
    def provider(self) -> CloudProvider:
        """Provider of the candidate."""
        ...

    @property
    def reason(self) -> str:
        """Verdict reason."""
        ...

    @property
    def accepted(self) -> bool:
        """Eligible or not."""
        ...


JudgedT = TypeVar("JudgedT", bound=Judged)


def compact(verdicts: Sequence[JudgedT], limit: int = 20) -> list[JudgedT]:
    """At most `limit` verdicts for the status, most informative first: up to half the
    slots for the best eligible offers (fallback order), then the first rejection of each
    (provider, reason) pair, then the remaining eligible offers and rejections."""
    if len(verdicts) <= limit:
        return list(verdicts)
    accepted = [v for v in verdicts if v.accepted]
    head = accepted[: max(1, limit // 2)]
    seen: set[tuple[CloudProvider, str]] = set()
    representatives: list[JudgedT] = []
    rest: list[JudgedT] = []
    for verdict in verdicts:
        if verdict.accepted:
            continue
        key = (verdict.provider, _reason_code(verdict.reason))
        (rest if key in seen else representatives).append(verdict)
        seen.add(key)
    return (head + representatives + accepted[len(head) :] + rest)[:limit]


# ---------------------------------------------------------------------------------------
# The guard just before a create


def offer_violation(config: EmulatorConfigSpec, spec: VMCreateRequest, offer: Offer) -> str | None:
    """Why this exact offer must not be created now, or None.

    The last check before `create`, whatever path produced the offer (a fresh selection,
    a cached offer shared between VMs, a re-query after a restart): the provider must still
    be enabled and allowed, and the offer must meet the preset and the tighter cost cap for
    this GameVM. Reuses the selection's own rules, so the two can never disagree.
    """
    plan = plan_selection(config, spec)
    query = next((q for q in plan.queries if q.provider is offer.provider), None)
    if query is None:
        return f"NotEligible: {offer.provider} is not an eligible provider for this GameVM"
    rules = _rules(query, frozenset())
    return _fit_reason(offer, rules) or _market_reason(offer, rules)
