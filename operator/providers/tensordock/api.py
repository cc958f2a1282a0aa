"""TensorDock v2 response shapes -> value types. Pure: no I/O.

Shapes follow reference/providers.md section 1b. Documented and third-party shapes are
both accepted: bodies wrapped in `data` or not, JSON:API `attributes` or flat objects,
camelCase or snake_case keys, lists or `{id: object}` maps.
"""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gamevm.models.enums import CloudProvider, GpuTier, VMPreset
from gamevm.models.presets import PresetResources, gpu_rank
from gamevm.providers.base import ErrorReason, Instance, InstanceState, Offer, ProviderError
from gamevm.providers.httpclient import trim
from gamevm.providers.locations import CityTable, macro_region


# GPU model (v0Name or display name, normalised to lower-case letters and digits) -> tier.
# First match wins; every model number must not be followed by another digit (so "a40"
# does not match "rtxa4000"). Data-centre compute GPUs without an NVENC video encoder
# (A100, H100, H200, B200) cannot stream with Wolf's hardware pipeline: never offered.
def _models(*names: str) -> str:
    return "|".join(f"{name}(?!\\d)" for name in names)


GPU_TIER_TABLE: tuple[tuple[str, GpuTier | None], ...] = (
    (_models("a100", "h100", "h200", "b200", "gh200"), None),
    (
        _models(
            "rtx5090",
            "rtx5080",
            "rtx4090",
            "rtx4080",
            "rtx3090",
            "rtx6000ada",
            "a6000",
            "l40s",
            "l40",
            "a40",
            "a5000",
            "a5500",
            "v100",
        ),
        GpuTier.HIGH_END,
    ),
    (
        _models(
            "rtx4070",
            "rtx4060",
            "rtx3080",
            "rtx3070",
            "rtx3060",
            "rtx2080",
            "rtx2070",
            "rtx2060",
            "gtx1080",
            "gtx1070",
            "gtx1660",
            "a4000",
            "a4500",
            "a2000",
            "rtx4000",
            "rtx5000",
            "p4000",
            "p5000",
            "p6000",
            "t4",
            "l4",
            "a10",
            "a16",
        ),
        GpuTier.BASIC,
    ),
)

DEDICATED_IP_KEYS = (
    # Per hostnode, documented under `available_resources` (reference section 0).
    "has_public_ip_available",
    "hasPublicIpAvailable",
    # Per location GPU entry (`network_features`) and third-party spellings.
    "dedicated_ip_available",
    "dedicatedIpAvailable",
    "dedicated_ip",
)
UNAVAILABLE_HOST_STATES = frozenset({"offline", "unavailable", "maintenance", "disabled"})
GONE_STATES = frozenset({"deleted", "terminated", "destroyed", "deleting"})

STATUS_MAP: Mapping[str, InstanceState] = {
    "running": InstanceState.RUNNING,
    "starting": InstanceState.STARTING,
    "restarting": InstanceState.STARTING,
    "creating": InstanceState.PENDING,
    "pending": InstanceState.PENDING,
    "provisioning": InstanceState.PENDING,
    "deploying": InstanceState.PENDING,
    "stopping": InstanceState.STOPPING,
    "stopped": InstanceState.STOPPED,
    "stoppeddisassociated": InstanceState.STOPPED,
    "outbid": InstanceState.STOPPED,
    "error": InstanceState.ERROR,
    "failed": InstanceState.ERROR,
}

_CAPACITY = re.compile(
    r"capacity|insufficient|not enough|no (?:gpus? |resources? |hostnodes? )?available|"
    r"unavailable|out of stock|sold out|exhausted|no longer available|slot",
    re.IGNORECASE,
)
_ALREADY = re.compile(r"already (?:running|started|stopped|stopping|starting)", re.IGNORECASE)
_NOT_NOW = re.compile(r"cannot|can't|while|not allowed|in progress", re.IGNORECASE)
_BALANCE = re.compile(
    r"balance|insufficient funds|need at least \$|top.?up|payment required", re.IGNORECASE
)
_GONE = re.compile(r"not found|already (?:deleted|terminated|gone|destroyed)|does not exist", re.I)


def gpu_tier(model: str) -> GpuTier | None:
    """Tier of a GPU model, or None when it is unknown or unsuitable for streaming."""
    key = re.sub(r"[^a-z0-9]", "", model.lower())
    for pattern, tier in GPU_TIER_TABLE:
        if re.search(pattern, key):
            return tier
    return None


def pick(obj: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    """First present, non-None key (callers list camel and snake spellings)."""
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return default


def flatten(obj: Any) -> dict[str, Any]:
    """A JSON:API resource or a flat object as one flat dict (attributes merged in)."""
    if not isinstance(obj, Mapping):
        return {}
    flat = dict(obj)
    attributes = flat.pop("attributes", None)
    if isinstance(attributes, Mapping):
        flat = {**attributes, **{k: v for k, v in flat.items() if k not in attributes}}
    return flat


def unwrap(body: Any) -> Any:
    """The payload under `data` when the body is wrapped."""
    if isinstance(body, Mapping) and "data" in body and body["data"] is not None:
        return body["data"]
    return body


def as_list(value: Any) -> list[Any]:
    """Lists stay lists; `{id: object}` maps become lists with the id filled in."""
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        return [
            {"id": key, **item} if isinstance(item, Mapping) else item
            for key, item in value.items()
        ]
    return []


def collection(body: Any, name: str) -> list[dict[str, Any]]:
    """Items of `data.<name>[]`, `data.attributes.<name>[]`, `<name>[]` or a bare `data[]`.

    The three instance-list shapes of the docs and clients (reference section 0). A
    wrapper object that is none of them (a JSON:API resource, an error body) yields no
    items: reading its keys as `{id: object}` entries would invent instance ids.
    """
    payload = unwrap(body)
    if isinstance(payload, Mapping):
        attributes = payload.get("attributes")
        if name in payload:
            payload = payload[name]
        elif isinstance(attributes, Mapping) and name in attributes:
            payload = attributes[name]
        elif _looks_like_resource(payload):
            return []
    return [flatten(item) for item in as_list(payload) if isinstance(item, Mapping)]


_RESOURCE_KEYS = frozenset({"type", "attributes", "id", "status", "error", "message", "errors"})


def _looks_like_resource(payload: Mapping[str, Any]) -> bool:
    """A JSON:API resource or a status/error object, not a `{id: object}` map."""
    return bool(_RESOURCE_KEYS & set(payload))


def parse_json(text: str, what: str) -> Any:
    """JSON or a BadResponse error naming the call."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ProviderError(
            ErrorReason.BAD_RESPONSE,
            f"TensorDock {what}: response is not JSON: {trim(text, 120)!r}",
            retryable=True,
        ) from exc


def _as_float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------
# Offers


@dataclass(frozen=True)
class UnitPrices:
    """Per-unit hourly prices (USD)."""

    vcpu: float
    ram_gb: float
    storage_gb: float

    def price(self, vcpu: int, ram_gb: int, storage_gb: int) -> float:
        """Hourly price of the non-GPU resources."""
        return vcpu * self.vcpu + ram_gb * self.ram_gb + storage_gb * self.storage_gb


def _unit_prices(obj: Mapping[str, Any]) -> UnitPrices | None:
    pricing = pick(obj, "pricing", "prices")
    if not isinstance(pricing, Mapping):
        return None
    return UnitPrices(
        vcpu=_as_float(pick(pricing, "per_vcpu_hr", "perVcpuHr", "vcpu")),
        ram_gb=_as_float(pick(pricing, "per_gb_ram_hr", "perGbRamHr", "ram")),
        storage_gb=_as_float(pick(pricing, "per_gb_storage_hr", "perGbStorageHr", "storage")),
    )


def _dedicated_ip(obj: Mapping[str, Any]) -> bool | None:
    for container in (obj, pick(obj, "network_features", "networkFeatures") or {}):
        if isinstance(container, Mapping):
            value = pick(container, *DEDICATED_IP_KEYS)
            if value is not None:
                return bool(value)
    return None


@dataclass(frozen=True)
class LocationGpu:
    """One GPU model a location sells, with the location's unit prices for it."""

    v0_name: str
    display_name: str
    price_per_hr: float
    prices: UnitPrices | None
    dedicated_ip: bool | None
    max_vcpus: int | None
    max_ram_gb: int | None


@dataclass(frozen=True)
class Location:
    """A TensorDock location (city) from GET /locations."""

    id: str
    city: str
    stateprovince: str
    country: str
    gpus: tuple[LocationGpu, ...]

    @property
    def label(self) -> str:
        """'City, State, Country' without empty parts."""
        return ", ".join(p for p in (self.city, self.stateprovince, self.country) if p)

    def gpu(self, v0_name: str) -> LocationGpu | None:
        """The location's entry for one GPU model."""
        return next((g for g in self.gpus if g.v0_name == v0_name), None)

    @property
    def dedicated_ip(self) -> bool | None:
        """Whether any GPU entry of the location offers dedicated IPs."""
        flags = [g.dedicated_ip for g in self.gpus if g.dedicated_ip is not None]
        return any(flags) if flags else None

    @property
    def prices(self) -> UnitPrices | None:
        """Unit prices of the first entry that has them (prices are per location)."""
        return next((g.prices for g in self.gpus if g.prices is not None), None)


def parse_locations(body: Any) -> dict[str, Location]:
    """GET /locations -> locations by id."""
    result: dict[str, Location] = {}
    for item in collection(body, "locations"):
        gpus = []
        for raw in as_list(pick(item, "gpus", default=[])):
            gpu = flatten(raw)
            resources = pick(gpu, "resources", default={}) or {}
            v0_name = str(pick(gpu, "v0Name", "v0_name", "name", default=""))
            if not v0_name:
                continue
            gpus.append(
                LocationGpu(
                    v0_name=v0_name,
                    display_name=str(pick(gpu, "displayName", "display_name", default=v0_name)),
                    price_per_hr=_as_float(pick(gpu, "price_per_hr", "pricePerHr", "price")),
                    prices=_unit_prices(gpu),
                    dedicated_ip=_dedicated_ip(gpu),
                    max_vcpus=_as_int(pick(resources, "max_vcpus", "maxVcpus")),
                    max_ram_gb=_as_int(pick(resources, "max_ram_gb", "maxRamGb")),
                )
            )
        location_id = str(pick(item, "id", "location_id", "locationId", default=""))
        if not location_id:
            continue
        result[location_id] = Location(
            id=location_id,
            city=str(pick(item, "city", default="")),
            stateprovince=str(pick(item, "stateprovince", "stateProvince", "region", default="")),
            country=str(pick(item, "country", default="")),
            gpus=tuple(gpus),
        )
    return result


@dataclass(frozen=True)
class HostGpu:
    """GPUs of one model free on a hostnode."""

    v0_name: str
    available: int
    price_per_hr: float | None


@dataclass(frozen=True)
class Hostnode:
    """A TensorDock hostnode from GET /hostnodes."""

    id: str
    location_id: str
    city: str
    stateprovince: str
    country: str
    gpus: tuple[HostGpu, ...]
    max_vcpus_per_gpu: int | None
    max_ram_per_gpu: int | None
    available_vcpus: int | None
    available_ram_gb: int | None
    prices: UnitPrices | None
    dedicated_ip: bool | None
    usable: bool


def parse_hostnodes(body: Any) -> list[Hostnode]:
    """GET /hostnodes -> hostnodes."""
    result = []
    for item in collection(body, "hostnodes"):
        host_id = str(pick(item, "id", "hostnode_id", "hostnodeId", default=""))
        if not host_id:
            continue
        location = flatten(pick(item, "location", default={}))
        available = flatten(pick(item, "available_resources", "availableResources", default={}))
        gpus = []
        for raw in as_list(pick(available, "gpus", default=[])):
            gpu = flatten(raw)
            name = str(pick(gpu, "v0Name", "v0_name", "name", default=""))
            if name:
                price = pick(gpu, "price_per_hr", "pricePerHr", "price")
                gpus.append(
                    HostGpu(
                        v0_name=name,
                        available=_as_int(pick(gpu, "availableCount", "available_count", "count"))
                        or 0,
                        price_per_hr=None if price is None else _as_float(price),
                    )
                )
        status = str(pick(item, "status", default="")).lower()
        result.append(
            Hostnode(
                id=host_id,
                location_id=str(
                    pick(
                        item,
                        "location_id",
                        "locationId",
                        default=pick(location, "uuid", "id", default=""),
                    )
                ),
                city=str(pick(location, "city", default=pick(item, "city", default=""))),
                stateprovince=str(
                    pick(location, "stateprovince", "stateProvince", "region", default="")
                    or pick(item, "stateprovince", default="")
                ),
                country=str(pick(location, "country", default=pick(item, "country", default=""))),
                gpus=tuple(gpus),
                max_vcpus_per_gpu=_as_int(pick(available, "max_vcpus_per_gpu", "maxVcpusPerGpu")),
                max_ram_per_gpu=_as_int(pick(available, "max_ram_per_gpu", "maxRamPerGpu")),
                available_vcpus=_as_int(
                    pick(available, "vcpu_count", "available_vcpus", "max_vcpus", "vcpus")
                ),
                available_ram_gb=_as_int(
                    pick(available, "ram_gb", "available_ram_gb", "max_ram_gb", "ram")
                ),
                prices=_unit_prices(item) or _unit_prices(available),
                # The documented per-hostnode flag (`available_resources.
                # has_public_ip_available`) wins over hostnode-level spellings.
                dedicated_ip=_dedicated_ip(available)
                if _dedicated_ip(available) is not None
                else _dedicated_ip(item),
                usable=status not in UNAVAILABLE_HOST_STATES,
            )
        )
    return result


@dataclass(frozen=True)
class OfferContext:
    """Everything offers need besides the API data."""

    preset: VMPreset
    resources: PresetResources
    storage_gb: int
    cities: CityTable


def build_offers(
    locations: Mapping[str, Location], hostnodes: Iterable[Hostnode], ctx: OfferContext
) -> list[Offer]:
    """One offer per usable hostnode and suitable GPU model (or one CPU-only offer).

    Rules: dedicated IP must be available (Wolf needs fixed ports); price = GPU price +
    vCPU, RAM and storage at the unit prices; capacity = free GPUs (GPU presets) or how
    many preset-sized VMs fit in free vCPU/RAM (CPU-only, deployed on the hostnode since
    location deploys need a GPU); GPU models of a lower tier than the preset are skipped.
    """
    offers: list[Offer] = []
    for host in hostnodes:
        location = locations.get(host.location_id)
        if not host.usable or not _has_dedicated_ip(host, location):
            continue
        point = _coordinates(host, location, ctx.cities)
        if point is None:
            continue
        if ctx.resources.gpu is GpuTier.NONE:
            offer = _cpu_offer(host, location, point, ctx)
            if offer is not None:
                offers.append(offer)
            continue
        for gpu in host.gpus:
            offer = _gpu_offer(host, location, gpu, point, ctx)
            if offer is not None:
                offers.append(offer)
    return offers


def _has_dedicated_ip(host: Hostnode, location: Location | None) -> bool:
    if host.dedicated_ip is not None:
        return host.dedicated_ip
    return bool(location is not None and location.dedicated_ip)


def _coordinates(
    host: Hostnode, location: Location | None, cities: CityTable
) -> tuple[float, float, str] | None:
    city = host.city or (location.city if location else "")
    state = host.stateprovince or (location.stateprovince if location else "")
    country = host.country or (location.country if location else "")
    found = cities.lookup(city, state, country)
    if found is None:
        return None
    label = ", ".join(p for p in (city, state, country) if p)
    return found.latitude, found.longitude, label


def _cpu_offer(
    host: Hostnode,
    location: Location | None,
    point: tuple[float, float, str],
    ctx: OfferContext,
) -> Offer | None:
    prices = host.prices or (location.prices if location else None)
    if prices is None:
        return None
    need = ctx.resources
    return _offer(
        host,
        point,
        ctx,
        price=prices.price(need.vcpu, need.ram_gb, ctx.storage_gb),
        tier=GpuTier.NONE,
        gpu_model=None,
        available=1 if (fits := _fits(host, need)) is None else fits,
    )


def _fits(host: Hostnode, need: PresetResources) -> int | None:
    """How many preset-sized VMs the free vCPU/RAM allow; None when not published."""
    fits = [
        free // want
        for free, want in ((host.available_vcpus, need.vcpu), (host.available_ram_gb, need.ram_gb))
        if free is not None
    ]
    return min(fits) if fits else None


def _gpu_offer(
    host: Hostnode,
    location: Location | None,
    gpu: HostGpu,
    point: tuple[float, float, str],
    ctx: OfferContext,
) -> Offer | None:
    tier = gpu_tier(gpu.v0_name)
    if tier is None or gpu_rank(tier) < gpu_rank(ctx.resources.gpu):
        return None
    entry = location.gpu(gpu.v0_name) if location else None
    if entry is not None and entry.dedicated_ip is False and host.dedicated_ip is None:
        return None
    need = ctx.resources
    max_vcpus = host.max_vcpus_per_gpu or (entry.max_vcpus if entry else None)
    max_ram = host.max_ram_per_gpu or (entry.max_ram_gb if entry else None)
    if (max_vcpus is not None and max_vcpus < need.vcpu) or (
        max_ram is not None and max_ram < need.ram_gb
    ):
        return None
    prices = (
        host.prices or (entry.prices if entry else None) or (location.prices if location else None)
    )
    gpu_price = (
        gpu.price_per_hr
        if gpu.price_per_hr is not None
        else (entry.price_per_hr if entry else None)
    )
    if prices is None or gpu_price is None:
        return None
    return _offer(
        host,
        point,
        ctx,
        price=gpu_price + prices.price(need.vcpu, need.ram_gb, ctx.storage_gb),
        tier=tier,
        gpu_model=gpu.v0_name,
        available=max(
            0, gpu.available if (fits := _fits(host, need)) is None else min(gpu.available, fits)
        ),
    )


def _offer(
    host: Hostnode,
    point: tuple[float, float, str],
    ctx: OfferContext,
    *,
    price: float,
    tier: GpuTier,
    gpu_model: str | None,
    available: int,
) -> Offer:
    lat, lon, label = point
    details = {"hostnode_id": host.id, "location_id": host.location_id}
    if gpu_model:
        details["gpu_v0_name"] = gpu_model
    return Offer(
        provider=CloudProvider.TENSORDOCK,
        region=macro_region(lat, lon),
        placement_id=host.id,
        location_label=label,
        latitude=lat,
        longitude=lon,
        price_per_hour=round(price, 6),
        vcpu=ctx.resources.vcpu,
        ram_gb=ctx.resources.ram_gb,
        gpu_tier=tier,
        gpu_model=gpu_model,
        available=available,
        details=details,
    )


# ---------------------------------------------------------------------------------------
# Instances


@dataclass(frozen=True)
class InstanceSummary:
    """One entry of GET /instances."""

    id: str
    name: str
    status: str
    ip_address: str | None = None
    """Only where an entry carries one (the documented list does not)."""
    ports: Mapping[int, int] = field(default_factory=dict)


IP_KEYS = ("ipAddress", "ip_address", "dedicatedIpAddress", "dedicated_ip_address", "ip")
PORT_KEYS = ("portForwards", "port_forwards")


def parse_instance_list(body: Any) -> list[InstanceSummary]:
    """GET /instances -> (id, name, status, and the IP and ports if listed) per instance."""
    return [
        InstanceSummary(
            id=str(pick(item, "id", "instance_id", "instanceId", default="")),
            name=str(pick(item, "name", default="")),
            status=str(pick(item, "status", default="")),
            ip_address=_address(pick(item, *IP_KEYS)),
            ports=parse_ports(pick(item, *PORT_KEYS, default=[])),
        )
        for item in collection(body, "instances")
        if pick(item, "id", "instance_id", "instanceId") is not None
    ]


def _address(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def map_status(status: str) -> InstanceState:
    """Provider status (any case; 'StoppedDisassociated' too) -> InstanceState."""
    key = re.sub(r"[^a-z]", "", status.lower())
    return STATUS_MAP.get(key, InstanceState.UNKNOWN)


def is_gone_status(status: str) -> bool:
    """Statuses that mean the instance no longer exists."""
    return re.sub(r"[^a-z]", "", status.lower()) in GONE_STATES


def parse_ports(raw: Any) -> dict[int, int]:
    """Port forwards -> internal: external.

    Accepts v2 lists `[{internal_port, external_port}]` (camel or snake) and v0 maps
    `{"<external>": "<internal>"}` (keys are external ports).
    """
    ports: dict[int, int] = {}
    if isinstance(raw, list):
        for item in raw:
            if not isinstance(item, Mapping):
                continue
            internal = _as_int(pick(item, "internal_port", "internalPort", "internal"))
            external = _as_int(pick(item, "external_port", "externalPort", "external"))
            if internal is not None and external is not None:
                ports[internal] = external
    elif isinstance(raw, Mapping):
        for external_key, internal_value in raw.items():
            internal, external = _as_int(internal_value), _as_int(external_key)
            if internal is not None and external is not None:
                ports[internal] = external
    return ports


def parse_instance(body: Any, *, fallback_id: str = "") -> Instance:
    """GET /instances/{id} or the POST /instances response -> Instance."""
    item = flatten(unwrap(body))
    if not item:
        raise ProviderError(
            ErrorReason.BAD_RESPONSE,
            "TensorDock instance: empty or non-object body",
            retryable=True,
        )
    status = str(pick(item, "status", default=""))
    instance_id = str(pick(item, "id", "instance_id", "instanceId", default=fallback_id))
    if not instance_id:
        raise ProviderError(
            ErrorReason.BAD_RESPONSE, "TensorDock instance: no id in response", retryable=True
        )
    ip = _address(pick(item, *IP_KEYS))
    price = pick(
        item,
        "rateHourly",
        "rate_hourly",
        "price_per_hr",
        "pricePerHr",
        "total_price",
        "totalPrice",
        "price_per_hour",
    )
    metadata = {"status": status}
    for key, *names in (
        ("hostnode_id", "hostnode_id", "hostnodeId", "hostnode"),
        ("location_id", "location_id", "locationId"),
    ):
        value = pick(item, *names)
        if isinstance(value, str | int):
            metadata[key] = str(value)
    return Instance(
        instance_id=instance_id,
        name=str(pick(item, "name", default="")),
        state=map_status(status),
        ip_address=ip,
        ports=parse_ports(pick(item, *PORT_KEYS, default=[])),
        region=None,
        price_per_hour=None if price is None else _as_float(price),
        configured=False,
        metadata=metadata,
    )


# ---------------------------------------------------------------------------------------
# Errors


def error_message(text: str) -> str:
    """The human part of an error body: `error`, `message`, `detail` or JSON:API errors."""
    try:
        body = json.loads(text)
    except ValueError:
        return trim(text) or "(empty body)"
    if isinstance(body, Mapping):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            first = errors[0]
            return trim(str(pick(first, "detail", "title", "message", default=first)))
        message = pick(body, "error", "message", "detail", "msg")
        if message is not None:
            return trim(str(message))
    return trim(text)


def embedded_error_status(text: str) -> int | None:
    """The HTTP-like status of an error carried in a 2xx body, else None.

    TensorDock answers some errors with HTTP 200 (reference section 0: e.g. insufficient
    balance): a body with `error`/`errors`, `success: false` or `status >= 400` is an
    error whatever the HTTP status said (400 when the body names no status).
    """
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, Mapping):
        return None
    raw = body.get("status")
    code = None if isinstance(raw, bool) else _as_int(raw)
    if code is not None and code >= 400:
        return code
    if body.get("error") or body.get("errors") or body.get("success") is False:
        return 400
    return None


def is_already_in_state(status: int, text: str) -> bool:
    """'Already running/stopped' (409 or a message saying so): start/stop idempotency.

    A 409 that says the transition is impossible right now ('cannot start while
    stopping') is a conflict to retry, not success.
    """
    detail = error_message(text)
    if _ALREADY.search(detail):
        return True
    return status == 409 and not _NOT_NOW.search(detail)


def is_already_gone(status: int, text: str) -> bool:
    """404 or an 'already deleted' message: delete idempotency."""
    return status == 404 or bool(_GONE.search(error_message(text)) and status < 500)


def error_for(status: int, text: str, what: str, retry_after: float | None = None) -> ProviderError:
    """Map an HTTP failure to a ProviderError (messages never include credentials)."""
    detail = error_message(text)
    message = f"TensorDock {what}: HTTP {status}: {detail}"
    reason, retryable = _reason_for(status, detail)
    return ProviderError(
        reason,
        message,
        retryable=retryable,
        retry_after=retry_after if retryable else None,
    )


def _reason_for(status: int, detail: str) -> tuple[ErrorReason, bool]:
    if status in (401, 403):
        return ErrorReason.UNAUTHORIZED, False
    if status == 429:
        return ErrorReason.RATE_LIMITED, True
    if status >= 500:
        return ErrorReason.SERVER_ERROR, True
    if status == 402 or _BALANCE.search(detail):
        # Account-wide and only a person can fix it: never retried, never a fallback
        # through every hostnode (each would fail the same way).
        return ErrorReason.INSUFFICIENT_BALANCE, False
    if _CAPACITY.search(detail):
        # Not retryable here, but the reconcile falls back to the next candidate.
        return ErrorReason.NO_CAPACITY, False
    return _CLIENT_ERRORS.get(status, (ErrorReason.INVALID_REQUEST, False))


_CLIENT_ERRORS: Mapping[int, tuple[ErrorReason, bool]] = {
    404: (ErrorReason.NOT_FOUND, False),
    409: (ErrorReason.CONFLICT, True),
}
