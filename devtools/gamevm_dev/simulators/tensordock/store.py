"""Instances, hostnode capacity and the VM lifecycle of the TensorDock simulator.

Lifecycle (delays x `delay_scale`; 0 = instant, done inside the request):
create -> `starting` -(boot_s)-> `running`; stop: `stopping` -(stop_s)-> `stopped`;
start: `starting` -(boot_s)-> `running`. The image is plain Ubuntu: nothing answers on
Wolf's port unless the create's `cloud_init` installs and starts Wolf (see
`cloudinit`). On the first boot the VM "runs" its user data after `configure_s`: Wolf
starts when the user data would start it, and the report the user data would POST is
POSTed (with retries). Later boots start Wolf again (an enabled systemd unit) without
a new report (cloud-init runs once per instance). A VM created with
`useDedicatedIp` gets its own loopback address (a random one in 127.64.0.0/10: Linux
routes all of 127/8 to lo), published as its `ipAddress`, with Wolf on its port 47989
and the forwards the identity, as a dedicated public IP would be; its configuration
report is sent from that address. Other VMs share 127.0.0.1: Wolf answers on
127.0.0.1:<port>, published as the port forward 47989 -> <port>. SSH (22) is a port
nothing listens on. A stopped VM keeps its
reservation (GPU and ports) unless the fault `reclaim_gpus_on_stop` gives its GPU to
another renter (`stoppeddisassociated`; starting it answers 400); whether real v2 stop
releases the GPU is UNCONFIRMED.
Names are not unique (TensorDock does not enforce it), so double creates are visible.
"""

import asyncio
import ipaddress
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from gamevm_dev.simulators.ports import LOOPBACK, SSH_PORT, WOLF_HTTP_PORT, free_port
from gamevm_dev.simulators.tensordock import catalog
from gamevm_dev.simulators.tensordock.cloudinit import Plan, interpret
from gamevm_dev.simulators.wolf import WolfResponder, WolfState

BOOT_S = 45.0
STOP_S = 15.0
CONFIGURE_S = 240.0
"""Driver, Docker and Wolf image downloads on a fresh VM take minutes."""
REPORT_ATTEMPTS = 20
DEDICATED_NETWORK = ipaddress.ip_network("127.64.0.0/10")
log = logging.getLogger(__name__)


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
    cloud_init: dict[str, Any] | None


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
    address: str = LOOPBACK
    """The VM's IP: its own loopback address with a dedicated IP, else 127.0.0.1."""
    wolf_state: WolfState = WolfState.FREE
    wolf_silent: bool = False
    """Boots and bills, but no Wolf ever answers (fault `wolf_silent`)."""
    cloud_init: dict[str, Any] | None = field(default=None, repr=False)
    configured: bool = False
    """The user data ran (first boot)."""
    report: str | None = None
    """What happened to the report POST: None (none yet), 'sent <status>', 'failed ...'."""
    gpu_reclaimed: bool = False
    """`stoppeddisassociated`: another renter holds this VM's GPU."""
    reclaim_on_stop: bool = False
    wolf: WolfResponder | None = field(default=None, repr=False)
    wolf_requests_before: int = 0
    """/serverinfo requests answered by this VM's earlier Wolf responders (since started)."""
    transition: asyncio.Task[None] | None = field(default=None, repr=False)
    configuring: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def plan(self) -> Plan:
        """What the VM's user data does."""
        return interpret(self.cloud_init)

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
            "address": self.address,
            "price_per_hr": self.price_per_hr,
            "created_at": self.created_at,
            "deleted_at": self.deleted_at,
            "wolf_state": self.wolf_state.value,
            "wolf_silent": self.wolf_silent,
            "cloud_init": self.cloud_init,
            "configured": self.configured,
            "report": self.report,
            "gpu_reclaimed": self.gpu_reclaimed,
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
            address=str(data.get("address", LOOPBACK)),
            price_per_hr=data["price_per_hr"],
            created_at=data["created_at"],
            deleted_at=data["deleted_at"],
            wolf_state=WolfState(data["wolf_state"]),
            wolf_silent=bool(data.get("wolf_silent", False)),
            cloud_init=data.get("cloud_init"),
            configured=bool(data.get("configured", False)),
            report=data.get("report"),
            gpu_reclaimed=bool(data.get("gpu_reclaimed", False)),
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
        self.reclaimed: dict[str, dict[str, int]] = {}
        """GPUs other renters took from stopped VMs, by hostnode and model."""

    # -- capacity ---------------------------------------------------------------------

    def used(self, hostnode_id: str) -> tuple[dict[str, int], int, int, int]:
        """GPUs by model, vCPUs, RAM and storage held by live VMs on a hostnode."""
        gpus: dict[str, int] = dict(self.reclaimed.get(hostnode_id, {}))
        vcpus = ram = storage = 0
        for vm in self.vms.values():
            if vm.deleted or vm.hostnode_id != hostnode_id:
                continue
            if vm.gpu_model and not vm.gpu_reclaimed:
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
        """Record a new VM in `starting` with its address and forwards reserved."""
        ports = sorted({*req.internal_ports})
        address = self._free_address() if req.dedicated_ip else LOOPBACK
        forwards = {port: port if req.dedicated_ip else free_port() for port in ports}
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
            address=address,
            price_per_hr=price_per_hr(hostnode, req),
            created_at=time.time(),
            cloud_init=req.cloud_init,
        )
        self.vms[vm.id] = vm
        self.save()
        return vm

    def _free_address(self) -> str:
        """A loopback address no live VM of this simulator holds (random, so that
        simulators running side by side rarely pick the same one)."""
        taken = {vm.address for vm in self.vms.values() if not vm.deleted}
        while True:
            candidate = str(DEDICATED_NETWORK[secrets.randbelow(DEDICATED_NETWORK.num_addresses)])
            if candidate not in taken and not candidate.endswith((".0", ".255")):
                return candidate

    async def boot(self, vm: VM) -> None:
        """`starting` -> `running` after the boot delay (inline when instant)."""
        vm.status = "starting"
        await self._transition(vm, BOOT_S, self._finish_boot)

    def restartable(self, vm: VM) -> bool:
        """Whether a `stoppeddisassociated` VM's GPU is free again (it never is while
        another renter holds it)."""
        if not vm.gpu_reclaimed or vm.gpu_model is None:
            return True
        free, *_ = self.free(vm.hostnode)
        return free.get(vm.gpu_model, 0) >= vm.gpu_count

    async def shutdown(self, vm: VM, *, reclaim_gpu: bool = False) -> None:
        """`stopping` -> `stopped` (or `stoppeddisassociated`); Wolf stops at once."""
        vm.status = "stopping"
        vm.reclaim_on_stop = reclaim_gpu and vm.gpu_model is not None
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
        self.reclaimed.clear()
        self.create_calls = 0
        self.save()

    async def restore(self) -> None:
        """Load the state file (if any) and bring running VMs' Wolf back."""
        if self.state_file is None or not self.state_file.exists():
            return
        data = json.loads(self.state_file.read_text())
        self.create_calls = int(data.get("create_calls", 0))
        self.reclaimed = data.get("reclaimed", {})
        for raw in data.get("instances", []):
            vm = VM.from_json(raw)
            self.vms[vm.id] = vm
            if vm.status in ("starting", "running"):
                await self.boot(vm)
            elif vm.status == "stopping":
                vm.status = "stoppeddisassociated" if vm.gpu_reclaimed else "stopped"

    def save(self) -> None:
        """Write the state file atomically (when configured)."""
        if self.state_file is None:
            return
        payload = {
            "create_calls": self.create_calls,
            "reclaimed": self.reclaimed,
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
        vm.status = "running"
        self.save()
        if vm.configured:
            if self._wolf_installed(vm):  # an enabled systemd unit comes back with the VM
                await self._start_wolf(vm)
            return
        delay = CONFIGURE_S * self.delay_scale
        if delay <= 0:
            await self._configure(vm)
        else:
            vm.configuring = asyncio.create_task(self._configure_later(vm, delay))

    @staticmethod
    def _wolf_installed(vm: VM) -> bool:
        """The user data starts Wolf, and the install did not fail (fault `wolf_silent`)."""
        return vm.plan.starts_wolf and not vm.wolf_silent

    async def _configure_later(self, vm: VM, delay: float) -> None:
        await asyncio.sleep(delay)
        vm.configuring = None
        await self._configure(vm)

    async def _configure(self, vm: VM) -> None:
        """The user data's first run: Wolf (when set up), then the report (when asked)."""
        if vm.deleted or vm.status != "running" or vm.configured:
            return
        plan = vm.plan
        vm.configured = True
        wolf = self._wolf_installed(vm)
        if wolf:
            await self._start_wolf(vm)
        self.save()
        if plan.report_url and plan.token:
            body = {
                "gamingEnvironmentReady": wolf,
                "gamesMounted": plan.mounts_library,
                "message": "configured" if wolf else "failed steps: wolf",
            }
            task = asyncio.create_task(self._report(vm, plan.report_url, plan.token, body))
            vm.configuring = task

    async def _report(self, vm: VM, url: str, token: str, body: dict[str, Any]) -> None:
        """POST the report like the user data's curl loop: retried with backoff, from the
        VM's own address (where the operator sees it come from)."""
        # The VM's own connection: from its address (a dedicated IP), closed after.
        connector = aiohttp.TCPConnector(local_addr=(vm.address, 0))
        timeout = aiohttp.ClientTimeout(total=20)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            delay = 0.2
            for _attempt in range(REPORT_ATTEMPTS):
                if vm.deleted:
                    return
                try:
                    async with session.post(
                        url, json=body, headers={"Authorization": f"Bearer {token}"}
                    ) as response:
                        if response.status < 300:
                            vm.report = f"sent {response.status}"
                            self.save()
                            return
                        vm.report = f"failed HTTP {response.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    vm.report = f"failed {type(exc).__name__}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        log.warning("VM %s: the configuration report to %s was never accepted", vm.name, url)
        self.save()

    async def _start_wolf(self, vm: VM) -> None:
        wolf = WolfResponder(f"tensordock-{vm.name}", state=vm.wolf_state)
        wanted = vm.forwards.get(WOLF_HTTP_PORT, 0)
        try:
            port = await wolf.start(wanted, vm.address)
        except OSError:
            # The port is taken (another simulator's VM on the same address): a forward.
            port = await wolf.start(0, vm.address)
        vm.forwards[WOLF_HTTP_PORT] = port
        vm.wolf = wolf
        self.save()

    async def _finish_stop(self, vm: VM) -> None:
        if vm.deleted:
            return
        vm.status = "stopped"
        if vm.reclaim_on_stop and vm.gpu_model is not None:
            # Other renters take the released GPU, and every free one of that model, at
            # once (low-tier hosts reclaim GPUs from stopped VMs).
            vm.status = "stoppeddisassociated"
            vm.gpu_reclaimed = True
            vm.reclaim_on_stop = False
            free = self.free(vm.hostnode)[0].get(vm.gpu_model, 0)
            host = self.reclaimed.setdefault(vm.hostnode_id, {})
            host[vm.gpu_model] = host.get(vm.gpu_model, 0) + max(0, free)
        self.save()

    async def _stop_wolf(self, vm: VM) -> None:
        if vm.wolf is not None:
            await vm.wolf.stop()
            vm.wolf_requests_before += vm.wolf.requests
            vm.wolf = None

    @staticmethod
    def _cancel(vm: VM) -> None:
        for task in (vm.transition, vm.configuring):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        vm.transition = None
        vm.configuring = None


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
        "ipAddress": vm.address,
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
        "wolf_requests": vm.wolf_requests_before + (vm.wolf.requests if vm.wolf else 0),
        "configured": vm.configured,
        "wolf_installed": vm.plan.starts_wolf,
        "report": vm.report,
        "forwards": {str(k): v for k, v in vm.forwards.items()},
        "address": vm.address,
        "price_per_hr": vm.price_per_hr,
    }
    return view
