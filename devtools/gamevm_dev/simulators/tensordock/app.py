"""The TensorDock v2 HTTP API (under /api/v2) and the simulator's control API (/_sim/).

Shapes follow reference/providers.md 1b. Where the docs are silent or UNCONFIRMED:
- Errors: `{"status": <http>, "code": "<CODE>", "error": "<message>"}`. Codes:
  UNAUTHORIZED (401), VALIDATION_ERROR (400), INSUFFICIENT_CAPACITY (400),
  INSUFFICIENT_BALANCE (400), NOT_FOUND (404), CONFLICT (409: start when not stopped,
  stop when not running), RATE_LIMITED (429), INTERNAL_ERROR (5xx), GATEWAY_TIMEOUT (504).
- Rate-limit headers on every /api/v2 response: `X-RateLimit-Limit`,
  `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds to the end of the 60 s window).
  Over the limit: 429 with `Retry-After` (integer seconds).
- `GET /hostnodes/{id}` -> `{"data": {"hostnodes": [<hostnode>]}}` (same list shape as
  the collection, which is how the docs excerpt reads).
- Hostnode objects carry the documented fields (reference section 0) and no `status`:
  `{id, location_id, location{uuid, city, stateprovince, country, tier},
  uptime_percentage, available_resources{has_public_ip_available, vcpu_count, ram_gb,
  storage_gb, available_ports[], gpus[{v0Name, displayName, availableCount,
  price_per_hr}], max_vcpus_per_gpu, max_ram_per_gpu}, pricing{per_vcpu_hr,
  per_gb_ram_hr, per_gb_storage_hr}}`. The resource counts are the FREE amounts
  (`gpus` and `max_*_per_gpu` are third-party fields); CPU-only hostnodes have
  `gpus: []` and host GPU-less deploys, as does any hostnode with free vCPU/RAM.
- Errors with HTTP 200 (fault `errors_with_200`): the same error body, status 200, as
  TensorDock does for some errors (e.g. insufficient balance).
- Instance lists in any of the three shapes (fault `list_shape`): `instances`
  (documented `data.instances[]`), `attributes` (`data.attributes.instances[]`, the
  getting-started page), `flat` (`data[]` of flat objects).
- `GET /hostnodes` query filters: `location_id`, `gpu_model` (v0Name with >= 1 free),
  `min_gpu_count`, `min_vcpus`, `min_ram_gb`, `min_storage_gb`,
  `status=available` (some free capacity), `dedicated_ip=true`.
- `GET /locations`: a location's `gpus[]` lists models with free units; `max_count` and
  `resources` are the best single hostnode's free amounts; `network_features` are true
  when any such hostnode has them.
- `GET /instances` -> `{"data": {"instances": [{type, id, attributes{name, status}}]}}`.
- `GET /instances/{id}` -> the flat documented object plus `useDedicatedIp`, `image`,
  `resources`, `hostnode_id`, `location_id`, `location{...}`, `price_per_hr`, `created_at`.
  `portForwards` always lists 22 and 47989. With `useDedicatedIp` the VM has its own
  loopback address as `ipAddress` and the forwards are the identity; otherwise
  `ipAddress` is 127.0.0.1 and the requested `port_forwards[].external_port` values are
  ignored: the simulator allocates ports.
- POST start/stop -> 200 `{"data": {type, id, name, status}}` (status starting/stopping).
- DELETE -> 200 `{"data": {"type", "id", "status": "deleted", "message": "Instance deleted"}}`;
  404 when unknown or already deleted.
- Create: both `useDedicatedIp: true` and `port_forwards` -> 400; neither is allowed.
  A dedicated IP needs a hostnode with `dedicated_ip_available`.
"""

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gamevm_dev.simulators.tensordock import catalog
from gamevm_dev.simulators.tensordock.faults import FaultInjector
from gamevm_dev.simulators.tensordock.store import (
    ApiError,
    Request,
    Store,
    control_view,
    default_ports,
    instance_view,
)
from gamevm_dev.simulators.wolf import parse_state

API = "/api/v2"
DEFAULT_TOKEN = "sim-token"  # noqa: S105 - the simulator's well-known test token
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STORE: web.AppKey[Store] = web.AppKey("store", Store)
FAULTS: web.AppKey[FaultInjector] = web.AppKey("faults", FaultInjector)
LIMITER: web.AppKey["RateLimiter"] = web.AppKey("limiter")
TOKEN: web.AppKey[str] = web.AppKey("token", str)
STATS: web.AppKey[dict[str, int]] = web.AppKey("stats", dict)
# Per instance id as well: a test counts its own VM's calls, not those an operator makes
# for a GameVM an earlier test left behind.
INSTANCE_STATS: web.AppKey[dict[str, dict[str, int]]] = web.AppKey("instance_stats", dict)


class RateLimiter:
    """A fixed 60 s window per organisation (one token = one organisation here)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.window_start = time.monotonic()
        self.count = 0

    def hit(self) -> bool:
        """Count one request; False when over the limit."""
        self._roll()
        self.count += 1
        return self.count <= self.per_minute

    def headers(self) -> dict[str, str]:
        """The rate-limit headers for the current window."""
        self._roll()
        return {
            "X-RateLimit-Limit": str(self.per_minute),
            "X-RateLimit-Remaining": str(max(0, self.per_minute - self.count)),
            "X-RateLimit-Reset": str(self.reset_s()),
        }

    def reset_s(self) -> int:
        """Whole seconds until the window resets."""
        return max(1, math.ceil(60 - (time.monotonic() - self.window_start)))

    def _roll(self) -> None:
        if time.monotonic() - self.window_start >= 60:
            self.window_start = time.monotonic()
            self.count = 0


def error(status: int, code: str, message: str, **headers: str) -> web.Response:
    """The simulator's error body."""
    body = {"status": status, "code": code, "error": message}
    return web.json_response(body, status=status, headers=headers or None)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Faults, auth and rate limiting for /api/v2; headers on every response."""
    if not request.path.startswith(API):
        return await handler(request)
    app = request.app
    limiter = app[LIMITER]
    stats = app[STATS]
    key = f"{request.method} {_route_label(request)}"
    stats[key] = stats.get(key, 0) + 1
    instance_id = request.match_info.get("id")
    if instance_id is not None and "/instances/" in request.path:
        per_instance = app[INSTANCE_STATS].setdefault(instance_id, {})
        per_instance[key] = per_instance.get(key, 0) + 1
    try:
        response = await _api_response(request, handler)
    except web.HTTPException as exc:  # unknown route or method
        response = error(exc.status, "NOT_FOUND" if exc.status == 404 else "ERROR", exc.reason)
    if response.status >= 400 and app[FAULTS].faults.errors_with_200:
        # TensorDock answers some errors with 200 and the error in the body.
        response.set_status(200)
    response.headers.update(limiter.headers())
    return response


async def _injected_fault(request: web.Request) -> web.Response | None:
    faults = request.app[FAULTS]
    api_path = request.path[len(API) :] or "/"
    if not faults.matches(request.method, api_path):
        return None
    latency = faults.latency_s()
    if latency > 0:
        await asyncio.sleep(latency)
    if faults.timeout():
        await asyncio.sleep(faults.faults.timeout_s)
        return error(504, "GATEWAY_TIMEOUT", "Gateway timeout (simulated)")
    if faults.rate_limited():
        retry = str(faults.faults.retry_after_s)
        return error(429, "RATE_LIMITED", "Too many requests", **{"Retry-After": retry})
    if faults.server_error():
        status = faults.faults.error_status
        return error(status, "INTERNAL_ERROR", "Internal server error (simulated)")
    return None


async def _api_response(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    limiter = app[LIMITER]
    injected = await _injected_fault(request)
    if injected is not None:
        return injected
    if request.headers.get("Authorization", "") != f"Bearer {app[TOKEN]}":
        return error(401, "UNAUTHORIZED", "Invalid or missing bearer token")
    if not limiter.hit():
        retry = str(limiter.reset_s())
        return error(429, "RATE_LIMITED", "Rate limit exceeded", **{"Retry-After": retry})
    try:
        return await handler(request)
    except ApiError as exc:
        return error(exc.status, exc.code, exc.message)


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else request.path
    return canonical[len(API) :] if canonical.startswith(API) else canonical


# -- catalogue --------------------------------------------------------------------------


def _network_features(hostnode: catalog.HostnodeSpec) -> dict[str, bool]:
    return {
        "dedicated_ip_available": hostnode.dedicated_ip,
        "port_forwarding_available": True,
        "network_storage_available": False,
    }


def _pricing(hostnode: catalog.HostnodeSpec) -> dict[str, float]:
    return {
        "per_vcpu_hr": hostnode.price(catalog.PER_VCPU_HR),
        "per_gb_ram_hr": hostnode.price(catalog.PER_GB_RAM_HR),
        "per_gb_storage_hr": hostnode.price(catalog.PER_GB_STORAGE_HR),
    }


def hostnode_view(store: Store, hostnode: catalog.HostnodeSpec) -> dict[str, Any]:
    """One hostnode with its free capacity."""
    gpus, vcpus, ram, storage = store.free(hostnode)
    loc = hostnode.location
    gpu_entries = [
        {
            "v0Name": model,
            "displayName": catalog.GPU_MODELS[model].display_name,
            "availableCount": count,
            "price_per_hr": hostnode.price(catalog.GPU_MODELS[model].price_per_hr),
        }
        for model, count in sorted(gpus.items())
        if count > 0
    ]
    return {
        "id": hostnode.id,
        "location_id": loc.id,
        "location": {
            "uuid": loc.id,
            "city": loc.city,
            "stateprovince": loc.stateprovince,
            "country": loc.country,
            "tier": loc.tier,
        },
        "uptime_percentage": hostnode.uptime_percentage,
        "available_resources": {
            "has_public_ip_available": hostnode.dedicated_ip,
            "vcpu_count": max(0, vcpus),
            "ram_gb": max(0, ram),
            "storage_gb": max(0, storage),
            "gpus": gpu_entries,
            "max_vcpus_per_gpu": catalog.MAX_VCPUS_PER_GPU,
            "max_ram_per_gpu": catalog.MAX_RAM_PER_GPU,
            "available_ports": list(hostnode.ports),
        },
        "pricing": _pricing(hostnode),
    }


def _has_room(view: dict[str, Any]) -> bool:
    res = view["available_resources"]
    return bool(res["vcpu_count"] > 0 and res["ram_gb"] > 0 and res["storage_gb"] >= 100)


def _int_query(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise ApiError(400, "VALIDATION_ERROR", f"query {name} must be an integer") from exc


def _hostnode_matches(view: dict[str, Any], request: web.Request) -> bool:
    res = view["available_resources"]
    q = request.query
    if "location_id" in q and view["location_id"] != q["location_id"]:
        return False
    if q.get("status") == "available" and not _has_room(view):
        return False
    if q.get("dedicated_ip", "").lower() == "true" and not res["has_public_ip_available"]:
        return False
    gpu_model = q.get("gpu_model")
    min_gpus = _int_query(request, "min_gpu_count") or (1 if gpu_model else 0)
    if min_gpus:
        counts = [g["availableCount"] for g in res["gpus"] if gpu_model in (None, g["v0Name"])]
        if max(counts, default=0) < min_gpus:
            return False
    for query, key in (
        ("min_vcpus", "vcpu_count"),
        ("min_ram_gb", "ram_gb"),
        ("min_storage_gb", "storage_gb"),
    ):
        wanted = _int_query(request, query)
        if wanted is not None and res[key] < wanted:
            return False
    return True


async def list_hostnodes(request: web.Request) -> web.Response:
    """GET /hostnodes with optional filters."""
    store = request.app[STORE]
    views = [hostnode_view(store, h) for h in catalog.HOSTNODES]
    return web.json_response(
        {"data": {"hostnodes": [v for v in views if _hostnode_matches(v, request)]}}
    )


async def get_hostnode(request: web.Request) -> web.Response:
    """GET /hostnodes/{id}."""
    hostnode = catalog.HOSTNODES_BY_ID.get(request.match_info["id"])
    if hostnode is None:
        raise ApiError(404, "NOT_FOUND", "Hostnode not found")
    return web.json_response({"data": {"hostnodes": [hostnode_view(request.app[STORE], hostnode)]}})


def location_view(store: Store, loc: catalog.Location) -> dict[str, Any]:
    """One location with the GPU models it can currently place."""
    nodes = [h for h in catalog.HOSTNODES if h.location.id == loc.id]
    gpus: list[dict[str, Any]] = []
    for model in sorted({m for h in nodes for m in h.gpus}):
        best: tuple[int, int, int, int] | None = None
        features = {
            "dedicated_ip_available": False,
            "port_forwarding_available": False,
            "network_storage_available": False,
        }
        for h in nodes:
            free_gpus, vcpus, ram, storage = store.free(h)
            count = free_gpus.get(model, 0)
            if count <= 0:
                continue
            for key, value in _network_features(h).items():
                features[key] = features[key] or value
            candidate = (count, vcpus, ram, storage)
            best = candidate if best is None or candidate > best else best
        if best is None:
            continue
        sample = nodes[0]
        gpus.append(
            {
                "v0Name": model,
                "displayName": catalog.GPU_MODELS[model].display_name,
                "max_count": best[0],
                "price_per_hr": sample.price(catalog.GPU_MODELS[model].price_per_hr),
                "resources": {
                    "max_vcpus": max(0, best[1]),
                    "max_ram_gb": max(0, best[2]),
                    "max_storage_gb": max(0, best[3]),
                },
                "pricing": _pricing(sample),
                "network_features": features,
            }
        )
    return {
        "id": loc.id,
        "city": loc.city,
        "stateprovince": loc.stateprovince,
        "country": loc.country,
        "tier": loc.tier,
        "gpus": gpus,
    }


async def list_locations(request: web.Request) -> web.Response:
    """GET /locations."""
    store = request.app[STORE]
    return web.json_response(
        {"data": {"locations": [location_view(store, loc) for loc in catalog.LOCATIONS]}}
    )


# -- instances --------------------------------------------------------------------------


def _bad(message: str) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message)


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(f"{what} must be a positive integer")
    return value


def parse_create(body: Any) -> Request:
    """Validate a JSON:API create body against the documented rules."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or data.get("type") != "virtualmachine":
        raise _bad('body must be {"data": {"type": "virtualmachine", "attributes": {...}}}')
    attrs = data.get("attributes")
    if not isinstance(attrs, dict):
        raise _bad("data.attributes is required")
    name = attrs.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _bad("name is required")
    if attrs.get("type", "virtualmachine") != "virtualmachine":
        raise _bad("type must be virtualmachine")
    image = attrs.get("image")
    if image not in catalog.IMAGES:
        raise _bad(f"image must be one of {sorted(catalog.IMAGES)}")
    res = attrs.get("resources")
    if not isinstance(res, dict):
        raise _bad("resources is required")
    vcpus = _positive_int(res.get("vcpu_count"), "resources.vcpu_count")
    ram = _positive_int(res.get("ram_gb"), "resources.ram_gb")
    storage = _positive_int(res.get("storage_gb"), "resources.storage_gb")
    if storage < 100:
        raise _bad("resources.storage_gb must be at least 100")
    gpu_model, gpu_count = _parse_gpus(res.get("gpus", {}))
    location_id, hostnode_id = attrs.get("location_id"), attrs.get("hostnode_id")
    if (location_id is None) == (hostnode_id is None):
        raise _bad("exactly one of location_id or hostnode_id is required")
    if location_id is not None and gpu_model is None:
        raise _bad("location-based deployments require at least one GPU")
    if ("ssh_key" in attrs) == ("ssh_key_id" in attrs):
        raise _bad("exactly one of ssh_key or ssh_key_id is required")
    key = attrs.get("ssh_key", attrs.get("ssh_key_id"))
    if not isinstance(key, str) or not key.strip():
        raise _bad("ssh_key / ssh_key_id must be a non-empty string")
    dedicated = attrs.get("useDedicatedIp", False) is True
    forwards = attrs.get("port_forwards")
    if dedicated and forwards:
        raise _bad("use either useDedicatedIp or port_forwards, not both")
    internal = _parse_forwards(forwards or [])
    return Request(
        name=name,
        image=image,
        vcpus=vcpus,
        ram_gb=ram,
        storage_gb=storage,
        gpu_model=gpu_model,
        gpu_count=gpu_count,
        location_id=location_id,
        hostnode_id=hostnode_id,
        dedicated_ip=dedicated,
        internal_ports=default_ports(internal),
        cloud_init=_parse_cloud_init(attrs.get("cloud_init")),
    )


def _parse_cloud_init(value: Any) -> dict[str, Any] | None:
    """The documented `cloud_init` object (runcmd, packages, write_files, ...)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("cloud_init must be an object {runcmd[], packages[], write_files[], ...}")
    for key in ("runcmd", "packages", "write_files"):
        if key in value and not isinstance(value[key], list):
            raise _bad(f"cloud_init.{key} must be a list")
    return value


def _parse_gpus(gpus: Any) -> tuple[str | None, int]:
    if not isinstance(gpus, dict):
        raise _bad('resources.gpus must be {"<v0Name>": {"count": N}}')
    if not gpus:
        return None, 0
    if len(gpus) > 1:
        raise _bad("only one GPU model per instance")
    ((model, spec),) = gpus.items()
    if model not in catalog.GPU_MODELS:
        raise _bad(f"unknown GPU model {model}")
    count = _positive_int(spec.get("count") if isinstance(spec, dict) else None, "gpu count")
    return model, count


def _parse_forwards(forwards: Any) -> list[int]:
    if not isinstance(forwards, list):
        raise _bad("port_forwards must be a list")
    ports = []
    for item in forwards:
        if not isinstance(item, dict):
            raise _bad("port_forwards items are {internal_port, external_port}")
        port = _positive_int(item.get("internal_port"), "port_forwards[].internal_port")
        _positive_int(item.get("external_port"), "port_forwards[].external_port")
        ports.append(port)
    return ports


def _place(store: Store, faults: FaultInjector, req: Request) -> catalog.HostnodeSpec:
    if req.hostnode_id is not None:
        hostnode = catalog.HOSTNODES_BY_ID.get(req.hostnode_id)
        if hostnode is None:
            raise ApiError(404, "NOT_FOUND", f"Hostnode {req.hostnode_id} not found")
        if req.dedicated_ip and not hostnode.dedicated_ip:
            raise _bad("dedicated IP is not available on this hostnode")
        if faults.no_capacity(hostnode.location.id, hostnode.id) or not store.fits(hostnode, req):
            raise _no_capacity(faults, f"hostnode {hostnode.id}", req)
        return hostnode
    location = catalog.LOCATIONS_BY_ID.get(req.location_id or "")
    if location is None:
        raise ApiError(404, "NOT_FOUND", f"Location {req.location_id} not found")
    candidates = [
        h
        for h in catalog.HOSTNODES
        if h.location.id == location.id
        and store.fits(h, req)
        and h.id not in faults.faults.no_capacity_hostnodes
    ]
    if faults.no_capacity(location.id, None) or not candidates:
        raise _no_capacity(faults, f"location {location.city}", req)
    return candidates[0]


def _no_capacity(faults: FaultInjector, where: str, req: Request) -> ApiError:
    faults.served["capacity"] += 1
    gpu = f"{req.gpu_count}x {req.gpu_model}" if req.gpu_model else "no GPU"
    return ApiError(
        400,
        "INSUFFICIENT_CAPACITY",
        f"Insufficient capacity: {where} cannot host {gpu}, {req.vcpus} vCPU, "
        f"{req.ram_gb} GB RAM, {req.storage_gb} GB storage",
    )


def _summary(vm_id: str, name: str, status: str) -> dict[str, Any]:
    return {"data": {"type": "virtualmachine", "id": vm_id, "name": name, "status": status}}


async def create_instance(request: web.Request) -> web.StreamResponse:
    """POST /instances."""
    store, faults = request.app[STORE], request.app[FAULTS]
    store.create_calls += 1
    try:
        body = await request.json()
    except ValueError as exc:
        raise _bad("body must be JSON") from exc
    req = parse_create(body)
    if faults.faults.balance < 1:
        raise ApiError(
            400,
            "INSUFFICIENT_BALANCE",
            f"Insufficient balance: you need at least $1.00 to deploy "
            f"(balance ${faults.faults.balance:.2f})",
        )
    hostnode = _place(store, faults, req)
    vm = store.add(hostnode, req)
    vm.wolf_silent = faults.faults.wolf_silent
    await store.boot(vm)
    if faults.crash_after_create():
        if faults.faults.crash_mode == "500":
            return error(500, "INTERNAL_ERROR", "Internal server error (simulated crash)")
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError
    return web.json_response(_summary(vm.id, vm.name, vm.status), status=201)


async def list_instances(request: web.Request) -> web.Response:
    """GET /instances in the shape the `list_shape` fault selects (documented by default)."""
    vms = [vm for vm in request.app[STORE].vms.values() if not vm.deleted]
    shape = request.app[FAULTS].faults.list_shape
    if shape == "flat":
        flat = [{"id": vm.id, "name": vm.name, "status": vm.status} for vm in vms]
        return web.json_response({"data": flat})
    items = [
        {
            "type": "virtualmachine",
            "id": vm.id,
            "attributes": {"name": vm.name, "status": vm.status},
        }
        for vm in vms
    ]
    if shape == "attributes":
        return web.json_response({"data": {"attributes": {"instances": items}}})
    return web.json_response({"data": {"instances": items}})


async def get_instance(request: web.Request) -> web.Response:
    """GET /instances/{id}."""
    return web.json_response(instance_view(request.app[STORE].live(request.match_info["id"])))


async def start_instance(request: web.Request) -> web.Response:
    """POST /instances/{id}/start."""
    store = request.app[STORE]
    vm = store.live(request.match_info["id"])
    if vm.status in ("running", "starting"):
        raise ApiError(409, "CONFLICT", f"Instance is already {vm.status}")
    if vm.status not in ("stopped", "stoppeddisassociated"):
        raise ApiError(409, "CONFLICT", f"Instance cannot start while {vm.status}")
    if not store.restartable(vm):
        raise ApiError(
            400,
            "INSUFFICIENT_CAPACITY",
            f"Cannot start instance: its {vm.gpu_model} GPU is no longer available on this "
            "hostnode (instance was disassociated while stopped)",
        )
    vm.gpu_reclaimed = False  # its GPU is free again: reserved anew
    await store.boot(vm)
    return web.json_response(_summary(vm.id, vm.name, "starting"))


async def stop_instance(request: web.Request) -> web.Response:
    """POST /instances/{id}/stop."""
    store = request.app[STORE]
    vm = store.live(request.match_info["id"])
    if vm.status in ("stopped", "stopping", "stoppeddisassociated"):
        raise ApiError(409, "CONFLICT", f"Instance is already {vm.status}")
    if vm.status != "running":
        raise ApiError(409, "CONFLICT", f"Instance cannot stop while {vm.status}")
    await store.shutdown(vm, reclaim_gpu=request.app[FAULTS].faults.reclaim_gpus_on_stop)
    return web.json_response(_summary(vm.id, vm.name, "stopping"))


async def delete_instance(request: web.Request) -> web.Response:
    """DELETE /instances/{id}."""
    store = request.app[STORE]
    vm = store.live(request.match_info["id"])
    await store.delete(vm)
    body = {
        "type": "virtualmachine",
        "id": vm.id,
        "status": "deleted",
        "message": "Instance deleted",
    }
    return web.json_response({"data": body})


# -- control API ------------------------------------------------------------------------


async def sim_health(_request: web.Request) -> web.Response:
    """GET /_sim/health."""
    return web.json_response({"ok": True})


async def sim_get_faults(request: web.Request) -> web.Response:
    """GET /_sim/faults."""
    return web.json_response(request.app[FAULTS].faults.to_json())


async def sim_set_faults(request: web.Request) -> web.Response:
    """PUT replaces the faults, PATCH merges into them."""
    injector = request.app[FAULTS]
    try:
        injector.configure(await request.json(), merge=request.method == "PATCH")
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(injector.faults.to_json())


async def sim_instances(request: web.Request) -> web.Response:
    """GET /_sim/instances: every VM ever created, deleted ones included, with counts."""
    store = request.app[STORE]
    vms = list(store.vms.values())
    live_by_name: dict[str, int] = {}
    for vm in vms:
        if not vm.deleted:
            live_by_name[vm.name] = live_by_name.get(vm.name, 0) + 1
    return web.json_response(
        {
            "instances": [control_view(vm) for vm in vms],
            "counts": {
                "created": len(vms),
                "deleted": sum(vm.deleted for vm in vms),
                "live": sum(not vm.deleted for vm in vms),
                "create_calls": store.create_calls,
                "live_by_name": live_by_name,
            },
        }
    )


async def sim_stats(request: web.Request) -> web.Response:
    """GET /_sim/stats: requests per route (in all and per instance id) and faults served."""
    return web.json_response(
        {
            "requests": request.app[STATS],
            "requests_by_instance": request.app[INSTANCE_STATS],
            "faults_served": request.app[FAULTS].served,
        }
    )


async def sim_set_wolf(request: web.Request) -> web.Response:
    """POST /_sim/instances/{id_or_name}/wolf {"state": "busy"|"free"}."""
    store = request.app[STORE]
    vm = store.find(request.match_info["id"])
    if vm is None or vm.deleted:
        return web.json_response({"error": "no such live instance"}, status=404)
    try:
        state = parse_state(str((await request.json()).get("state", "")))
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    await store.set_wolf_state(vm, state)
    return web.json_response(control_view(vm))


async def sim_set_rate_limit(request: web.Request) -> web.Response:
    """PUT /_sim/rate-limit {"per_minute": N}: change the enforced limit, new window."""
    try:
        per_minute = int((await request.json())["per_minute"])
    except (KeyError, TypeError, ValueError):
        return web.json_response({"error": 'body must be {"per_minute": N}'}, status=400)
    limiter = request.app[LIMITER]
    limiter.per_minute = per_minute
    limiter.window_start = time.monotonic()
    limiter.count = 0
    return web.json_response({"per_minute": per_minute})


async def sim_reset(request: web.Request) -> web.Response:
    """POST /_sim/reset: no VMs, no faults, fresh counters."""
    await request.app[STORE].reset()
    request.app[FAULTS].reset()
    request.app[STATS].clear()
    request.app[INSTANCE_STATS].clear()
    request.app[LIMITER].count = 0
    return web.json_response({"ok": True})


def create_app(
    *,
    token: str = DEFAULT_TOKEN,
    delay_scale: float = 0.0,
    seed: int = 0,
    faults: dict[str, Any] | None = None,
    rate_limit_per_minute: int = 100,
    state_file: Any = None,
) -> web.Application:
    """The simulator as an aiohttp Application (run it with any aiohttp runner)."""
    app = web.Application(middlewares=[api_middleware])
    store = Store(delay_scale=delay_scale, state_file=state_file)
    injector = FaultInjector(seed)
    if faults:
        injector.configure(faults, merge=False)
    app[STORE] = store
    app[FAULTS] = injector
    app[LIMITER] = RateLimiter(rate_limit_per_minute)
    app[TOKEN] = token
    app[STATS] = {}
    app[INSTANCE_STATS] = {}

    async def lifecycle(app: web.Application) -> Any:
        await store.restore()
        yield
        await store.close()

    app.cleanup_ctx.append(lifecycle)
    r = app.router
    r.add_get(f"{API}/locations", list_locations)
    r.add_get(f"{API}/hostnodes", list_hostnodes)
    r.add_get(f"{API}/hostnodes/{{id}}", get_hostnode)
    r.add_post(f"{API}/instances", create_instance)
    r.add_get(f"{API}/instances", list_instances)
    r.add_get(f"{API}/instances/{{id}}", get_instance)
    r.add_post(f"{API}/instances/{{id}}/start", start_instance)
    r.add_post(f"{API}/instances/{{id}}/stop", stop_instance)
    r.add_delete(f"{API}/instances/{{id}}", delete_instance)
    r.add_get("/_sim/health", sim_health)
    r.add_get("/_sim/faults", sim_get_faults)
    r.add_put("/_sim/faults", sim_set_faults)
    r.add_patch("/_sim/faults", sim_set_faults)
    r.add_get("/_sim/instances", sim_instances)
    r.add_post("/_sim/instances/{id}/wolf", sim_set_wolf)
    r.add_get("/_sim/stats", sim_stats)
    r.add_put("/_sim/rate-limit", sim_set_rate_limit)
    r.add_post("/_sim/reset", sim_reset)
    return app
