"""Read API served from the mirror on the operator's aiohttp server.

GET /v1/vms/{vm_id}          -> VMResponse
GET /v1/vms/{vm_id}/status   -> VMStatusResponse (uptime_seconds while running)
GET /v1/vms?user_id=&status=&namespace= -> [VMResponse, ...] (oldest first)
Unknown ids give 404, a bad status filter 400, MongoDB unreachable 503; all errors are
JSON objects ``{"error": <code>, "message": <text>}``.

Every route asks `VMAccess` (given by the caller of `add_routes`, which also authenticates
the request) whether the caller may see a VM: a VM it may not `get` is 403, and a listing
contains only VMs it may `get` (403 for a `namespace` it may not read).
"""

from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel

from gamevm.mirror.errors import MirrorUnavailableError
from gamevm.mirror.repository import Mirror
from gamevm.models.documents import VMDocument, VMResponse, VMStatusResponse
from gamevm.models.enums import VMStatus


class VMAccess(Protocol):
    """Whether the (already authenticated) caller of a request may see a GameVM."""

    async def may_get(self, request: web.Request, namespace: str | None, name: str) -> bool:
        """May `get` the GameVM `namespace/name`."""
        ...

    async def may_list(self, request: web.Request, namespace: str) -> bool:
        """May `get` every GameVM in `namespace`."""
        ...


MIRROR_KEY = web.AppKey("gamevm_mirror", Mirror)
ACCESS_KEY = web.AppKey("gamevm_vm_access", VMAccess)
_STATUSES = [status.value for status in VMStatus]


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


def _json(model: BaseModel | list[BaseModel]) -> web.Response:
    if isinstance(model, list):
        return web.json_response([item.model_dump(mode="json") for item in model])
    return web.json_response(model.model_dump(mode="json"))


def _forbidden() -> web.Response:
    return _error(403, "forbidden", "you may not get this GameVM (Kubernetes RBAC)")


def _unavailable() -> web.Response:
    return _error(503, "mirror_unavailable", "the VM store (MongoDB) is not reachable; retry")


async def _find(request: web.Request) -> VMDocument | web.Response:
    vm_id = request.match_info["vm_id"]
    try:
        document = await request.app[MIRROR_KEY].get_vm(vm_id)
    except MirrorUnavailableError:
        return _unavailable()
    if document is None:
        return _error(404, "not_found", f"no VM with vm_id {vm_id!r}", vm_id=vm_id)
    if not await request.app[ACCESS_KEY].may_get(request, document.namespace, document.name or ""):
        return _forbidden()
    return document


async def get_vm(request: web.Request) -> web.Response:
    found = await _find(request)
    if isinstance(found, web.Response):
        return found
    return _json(VMResponse.from_document(found))


async def get_vm_status(request: web.Request) -> web.Response:
    found = await _find(request)
    if isinstance(found, web.Response):
        return found
    return _json(VMStatusResponse.from_document(found))


async def list_vms(request: web.Request) -> web.Response:
    raw_status = request.query.get("status")
    status: VMStatus | None = None
    if raw_status:
        try:
            status = VMStatus(raw_status)
        except ValueError:
            return _error(
                400,
                "bad_request",
                f"unknown status {raw_status!r}; use one of {', '.join(_STATUSES)}",
                allowed=_STATUSES,
            )
    user_id = request.query.get("user_id") or None
    namespace = request.query.get("namespace") or None
    access = request.app[ACCESS_KEY]
    if namespace is not None and not await access.may_list(request, namespace):
        return _forbidden()
    try:
        documents = await request.app[MIRROR_KEY].list_vms(user_id=user_id, status=status)
    except MirrorUnavailableError:
        return _unavailable()
    visible = [
        document
        for document in documents
        if (namespace is None or document.namespace == namespace)
        and await access.may_get(request, document.namespace, document.name or "")
    ]
    return _json([VMResponse.from_document(document) for document in visible])


def add_routes(app: web.Application, mirror: Mirror, access: VMAccess) -> None:
    """Serve the read API from ``mirror`` on ``app``, filtered by ``access``."""
    app[MIRROR_KEY] = mirror
    app[ACCESS_KEY] = access
    app.router.add_get("/v1/vms", list_vms)
    app.router.add_get("/v1/vms/{vm_id}", get_vm)
    app.router.add_get("/v1/vms/{vm_id}/status", get_vm_status)
