"""Instances, hostnode capacity and the VM lifecycle of the TensorDock simulator.

Lifecycle (delays x `delay_scale`; 0 = instant, done inside the request):
create -> `starting` -(boot_s)-> `running`; stop: `stopping` -(stop_s)-> `stopped`;
start: `starting` -(boot_s)-> `running`. While `running`, a WolfResponder answers on
127.0.0.1:<port>, published as the port forward 47989 -> <port>; SSH (22) gets a
reserved loopback port number that nothing listens on. A stopped VM keeps its
reservation (GPU and ports); whether real v2 stop releases the GPU is UNCONFIRMED.
Names are not unique (TensorDock does not enforce it), so double creates are visible.
"""

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gamevm_dev.simulators.ports import LOOPBACK, SSH_PORT, WOLF_HTTP_PORT, free_port
from gamevm_dev.simulators.tensordock import catalog
from gamevm_dev.simulators.wolf import WolfResponder, WolfState

BOOT_S = 45.0
STOP_S = 15.0


class ApiError(Exception):
    """An API error the app turns into `{"status", "code", "error"}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Request:
    """A validated create request."""

    name: str
    image: str
    vcpus: int
    ram_gb: int
    storage_gb: int
    gpu_model: str | None
    gpu_count: int
    location_id: str | None
    hostnode_id: str | None
    dedicated_ip: bool
    internal_ports: list[int]
    has_cloud_init: bool


@dataclass
class VM:
    """One simulated instance (kept after deletion for leak assertions)."""

    id: str
    name: str
    status: str
    hostnode_id: str
    image: str
    vcpus: int
    ram_gb: int
    storage_gb: int
    gpu_model: str | None
    gpu_count: int
    dedicated_ip: bool
    forwards: dict[int, int]
    price_per_hr: float
    created_at: float
    deleted_at: float | None = None
    wolf_state: WolfState = WolfState.FREE
    wolf_silent: bool = False
    """Boots and bills, but no Wolf ever answers (fault `wolf_silent`)."""
    wolf: WolfResponder | None = field(default=None, repr=False)
    transition: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def deleted(self) -> bool:
        """True once DELETE succeeded."""
        return self.deleted_at is not None

    @property
    def hostnode(self) -> catalog.HostnodeSpec:
        """The hostnode this VM lives on."""
        return catalog.HOSTNODES_BY_ID[self.hostnode_id]

    def to_json(self) -> dict[str, Any]:
        """Persistent form (no live objects)."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "hostnode_id": self.hostnode_id,
            "image": self.image,
            "vcpus": self.vcpus,
            "ram_gb": self.ram_gb,
            "storage_gb": self.storage_gb,
            "gpu_model": self.gpu_model,
            "gpu_count": self.gpu_count,
            "dedicated_ip": self.dedicated_ip,
            "forwards": {str(k): v for k, v in self.forwards.items()},
            "price_per_hr": self.price_per_hr,
            "created_at": self.created_at,
            "deleted_at": self.deleted_at,
            "wolf_state": self.wolf_state.value,
            "wolf_silent": self.wolf_silent,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "VM":
        """Inverse of to_json."""
        return cls(
            id=data["id"],
            name=data["name"],
            status=data["status"],
            hostnode_id=data["hostnode_id"],
            image=data["image"],
            vcpus=data["vcpus"],
            ram_gb=data["ram_gb"],
            storage_gb=data["storage_gb"],
            gpu_model=data["gpu_model"],
            gpu_count=data["gpu_count"],
            dedicated_ip=data["dedicated_ip"],
            forwards={int(k): int(v) for k, v in data["forwards"].items()},
            price_per_hr=data["price_per_hr"],
            created_at=data["created_at"],
            deleted_at=data["deleted_at"],
            wolf_state=WolfState(data["wolf_state"]),
            wolf_silent=bool(data.get("wolf_silent", False)),
        )


def price_per_hr(hostnode: catalog.HostnodeSpec, req: Request) -> float:
    """Hourly price: GPU price x count plus per-unit vCPU, RAM and storage prices."""
    total = (
        req.vcpus * hostnode.price(catalog.PER_VCPU_HR)
        + req.ram_gb * hostnode.price(catalog.PER_GB_RAM_HR)
        + req.storage_gb * hostnode.price(catalog.PER_GB_STORAGE_HR)
    )
    if req.gpu_model:
        total += req.gpu_count * hostnode.price(catalog.GPU_MODELS[req.gpu_model].price_per_hr)
    return round(total, 6)


class Store:
    """All simulator state; single event loop, so no locks are needed."""

    def __init__(self, *, delay_scale: float, state_file: Path | None = None) -> None:
        self.delay_scale = delay_scale
        self.state_file = state_file
        self.vms: dict[str, VM] = {}
        self.create_calls = 0

    # -- capacity ---------------------------------------------------------------------

    def used(self, hostnode_id: str) -> tuple[dict[str, int], int, int, int]:
        """GPUs by model, vCPUs, RAM and storage held by live VMs on a hostnode."""
        gpus: dict[str, int] = {}
        vcpus = ram = storage = 0
        for vm in self.vms.values():
            if vm.deleted or vm.hostnode_id != hostnode_id:
                continue
            if vm.gpu_model:
                gpus[vm.gpu_model] = gpus.get(vm.gpu_model, 0) + vm.gpu_count
            vcpus += vm.vcpus
            ram += vm.ram_gb
            storage += vm.storage_gb
        return gpus, vcpus, ram, storage

    def free(self, hostnode: catalog.HostnodeSpec) -> tuple[dict[str, int], int, int, int]:
        """Free GPUs by model, vCPUs, RAM and storage on a hostnode."""
        gpus, vcpus, ram, storage = self.used(hostnode.id)
        free_gpus = {m: n - gpus.get(m, 0) for m, n in hostnode.gpus.items()}
        return (
            free_gpus,
            hostnode.vcpus - vcpus,
            hostnode.ram_gb - ram,
            hostnode.storage_gb - storage,
        )

    def fits(self, hostnode: catalog.HostnodeSpec, req: Request) -> bool:
        """Whether the request fits the hostnode's free capacity and network features."""
        gpus, vcpus, ram, storage = self.free(hostnode)
        if req.gpu_model and gpus.get(req.gpu_model, 0) < req.gpu_count:
            return False
        if req.dedicated_ip and not hostnode.dedicated_ip:
            return False
        return vcpus >= req.vcpus and ram >= req.ram_gb and storage >= req.storage_gb

    # -- lifecycle --------------------------------------------------------------------

    def live(self, instance_id: str) -> VM:
        """A VM that exists, or a 404."""
        vm = self.vms.get(instance_id)
        if vm is None or vm.deleted:
            raise ApiError(404, "NOT_FOUND", f"Instance {instance_id} not found")
        return vm

    def find(self, id_or_name: str) -> VM | None:
        """By id, else the newest live VM with that name (control API convenience)."""
        if id_or_name in self.vms:
            return self.vms[id_or_name]
        named = [vm for vm in self.vms.values() if vm.name == id_or_name and not vm.deleted]
        return max(named, key=lambda vm: vm.created_at) if named else None

    def add(self, hostnode: catalog.HostnodeSpec, req: Request) -> VM:
        """Record a new VM in `starting` with its forwards reserved."""
        forwards = {port: free_port() for port in sorted({*req.internal_ports})}
        vm = VM(
            id=str(uuid.uuid4()),
            name=req.name,
            status="starting",
            hostnode_id=hostnode.id,
            image=req.image,
            vcpus=req.vcpus,
            ram_gb=req.ram_gb,
            storage_gb=req.storage_gb,
            gpu_model=req.gpu_model,
            gpu_count=req.gpu_count,
            dedicated_ip=req.dedicated_ip,
            forwards=forwards,
            price_per_hr=price_per_hr(hostnode, req),
            created_at=time.time(),
        )
        self.vms[vm.id] = vm
        self.save()
        return vm

    async def boot(self, vm: VM) -> None:
        """`starting` -> `running` after the boot delay (inline when instant)."""
        vm.status = "starting"
        await self._transition(vm, BOOT_S, self._finish_boot)

    async def shutdown(self, vm: VM) -> None:
        """`stopping` -> `stopped`; Wolf stops answering at once."""
        vm.status = "stopping"
        await self._stop_wolf(vm)
        await self._transition(vm, STOP_S, self._finish_stop)

    async def delete(self, vm: VM) -> None:
        """Mark deleted, cancel transitions, stop Wolf, free the capacity."""
        self._cancel(vm)
        await self._stop_wolf(vm)
        vm.status = "deleted"
        vm.deleted_at = time.time()
        self.save()

    async def set_wolf_state(self, vm: VM, state: WolfState) -> None:
        """Flip BUSY/FREE; kept across stop/start."""
        vm.wolf_state = state
        if vm.wolf is not None:
            vm.wolf.state = state
        self.save()

    async def reset(self) -> None:
        """Forget every VM (stopping their Wolf responders)."""
        for vm in self.vms.values():
            self._cancel(vm)
            await self._stop_wolf(vm)
        self.vms.clear()
        self.create_calls = 0
        self.save()

    async def restore(self) -> None:
        """Load the state file (if any) and bring running VMs' Wolf back."""
        if self.state_file is None or not self.state_file.exists():
            return
        data = json.loads(self.state_file.read_text())
        self.create_calls = int(data.get("create_calls", 0))
        for raw in data.get("instances", []):
            vm = VM.from_json(raw)
            self.vms[vm.id] = vm
            if vm.status in ("starting", "running"):
                await self.boot(vm)
            elif vm.status == "stopping":
                vm.status = "stopped"

    def save(self) -> None:
        """Write the state file atomically (when configured)."""
        if self.state_file is None:
            return
        payload = {
            "create_calls": self.create_calls,
            "instances": [vm.to_json() for vm in self.vms.values()],
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(self.state_file)

    async def close(self) -> None:
        """Stop timers and Wolf responders (server shutdown)."""
        for vm in self.vms.values():
            self._cancel(vm)
            await self._stop_wolf(vm)

    async def _transition(self, vm: VM, seconds: float, finish: Any) -> None:
        self._cancel(vm)
        self.save()
        delay = seconds * self.delay_scale
        if delay <= 0:
            await finish(vm)
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            vm.transition = None
            await finish(vm)

        vm.transition = asyncio.create_task(later())

    async def _finish_boot(self, vm: VM) -> None:
        if vm.deleted:
            return
        if vm.wolf_silent:
            vm.status = "running"
            self.save()
            return
        wolf = WolfResponder(f"tensordock-{vm.name}", state=vm.wolf_state)
        wanted = vm.forwards.get(WOLF_HTTP_PORT, 0)
        try:
            port = await wolf.start(wanted)
        except OSError:
            port = await wolf.start(0)  # the old external port is taken: a new forward
        vm.forwards[WOLF_HTTP_PORT] = port
        vm.wolf = wolf
        vm.status = "running"
        self.save()

    async def _finish_stop(self, vm: VM) -> None:
        if vm.deleted:
            return
        vm.status = "stopped"
        self.save()

    async def _stop_wolf(self, vm: VM) -> None:
        if vm.wolf is not None:
            await vm.wolf.stop()
            vm.wolf = None

    @staticmethod
    def _cancel(vm: VM) -> None:
        if vm.transition is not None and vm.transition is not asyncio.current_task():
            vm.transition.cancel()
        vm.transition = None


def default_ports(requested: list[int]) -> list[int]:
    """Every VM forwards SSH and Wolf's HTTP port, plus whatever was asked for."""
    return sorted({SSH_PORT, WOLF_HTTP_PORT, *requested})


def instance_view(vm: VM) -> dict[str, Any]:
    """`GET /instances/{id}`: the documented flat object plus placement details."""
    hostnode = vm.hostnode
    loc = hostnode.location
    gpus = {vm.gpu_model: {"count": vm.gpu_count}} if vm.gpu_model else {}
    return {
        "type": "virtualmachine",
        "id": vm.id,
        "name": vm.name,
        "status": vm.status,
        "ipAddress": LOOPBACK,
        "portForwards": [
            {"internal_port": internal, "external_port": external}
            for internal, external in sorted(vm.forwards.items())
        ],
        "useDedicatedIp": vm.dedicated_ip,
        "image": vm.image,
        "resources": {
            "vcpu_count": vm.vcpus,
            "ram_gb": vm.ram_gb,
            "storage_gb": vm.storage_gb,
            "gpus": gpus,
        },
        "hostnode_id": hostnode.id,
        "location_id": loc.id,
        "location": {
            "id": loc.id,
            "city": loc.city,
            "stateprovince": loc.stateprovince,
            "country": loc.country,
            "tier": loc.tier,
        },
        "price_per_hr": vm.price_per_hr,
        "created_at": _iso(vm.created_at),
    }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def control_view(vm: VM) -> dict[str, Any]:
    """The control API's view: includes deleted VMs and the live Wolf port."""
    view = {
        "id": vm.id,
        "name": vm.name,
        "status": vm.status,
        "deleted": vm.deleted,
        "hostnode_id": vm.hostnode_id,
        "location_id": vm.hostnode.location.id,
        "gpu_model": vm.gpu_model,
        "created_at": vm.created_at,
        "deleted_at": vm.deleted_at,
        "wolf_state": vm.wolf_state.value,
        "wolf_port": vm.wolf.port if vm.wolf is not None else None,
        "forwards": {str(k): v for k, v in vm.forwards.items()},
        "price_per_hr": vm.price_per_hr,
    }
    return view
