"""Steady state: N GameVMs already running under one operator, at TensorDock's real limit.

Creating 10,000 VMs at 100 requests/min would take well over three hours, so the run
starts where an operator restart after such a day would: the simulator holds N running
instances (bench/steady_tensordock.py) and every GameVM's status says where its instance
runs. The operator then keeps them: one shared instance list per interval, a Wolf probe per
VM per activity interval, auto-stop timers. After the start-up writes settle, for
`seconds`: operator CPU (% of one core), RSS (current and peak), provider requests per
minute (simulator counters) and API writes per minute (kube-apiserver /metrics).
"""

import json
import os
import secrets
import signal
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config

from bench import apimetrics, procstats
from bench.workload import create_all
from gamevm.models.names import (
    FINALIZER,
    GAMEVM_PLURAL,
    GROUP,
    VERSION,
    WOLF_PORT,
    access_secret_name,
)
from gamevm.services.reconcile import instance_name
from gamevm_dev.devstack.processes import ManagedProcess
from gamevm_dev.devstack.stack import Stack
from gamevm_dev.devstack.steps import CONTROL_PLANE, default_steps
from gamevm_dev.simulators.ports import free_port
from gamevm_dev.simulators.tensordock import catalog
from tests.fixtures.operator_env import OPERATOR_NAMESPACE, credentials_secret
from tests.fixtures.stack import operator_command

REPO = Path(__file__).resolve().parent.parent
PATCH_THREADS = 16
NAMESPACE = "steady"


def vm_status(vm: str, uid: str, instance_id: str, wolf_port: int, now: str) -> dict[str, Any]:
    """What the operator itself writes for a running TensorDock VM (its last status), field
    for field: a restarted operator then writes nothing (any difference would be one status
    patch per VM at start-up, which is not the restart this run stands for)."""
    decided = "2026-01-01T00:00:00Z"  # before the configuration report, as in real life
    name = instance_name(uid)
    conditions = [
        {
            "type": t,
            "status": "True",
            "reason": r,
            "message": m,
            "lastTransitionTime": now,
            "observedGeneration": 1,
        }
        for t, r, m in (
            ("Admitted", "PolicyAllowed", "allowed by the EmulatorConfig"),
            ("Provisioned", "InstanceCreated", f"tensordock instance {instance_id} ({name})"),
            ("Ready", "Running", "running"),
            ("Synced", "ReconcileSucceeded", "reconciled"),
            ("EnvironmentReady", "WolfAnswering", "running"),
        )
    ]
    return {
        "phase": "running",
        "vmId": uid,
        "preset": "retro",
        "provider": "tensordock",
        "region": "us-central",
        "gameId": "bench-game",
        "providerInstanceId": instance_id,
        "instanceName": name,
        "ipAddress": "127.0.0.1",
        "wolfPort": WOLF_PORT,  # Wolf's streaming port (the simulated one is its HTTP port)
        "sshPort": 1,
        "costPerHour": 0.2,
        "startedAt": now,
        "lastActivity": now,
        "gamingEnvironmentReady": True,
        "cloudypadConfigured": False,
        "gamesMounted": False,
        # The VM's cloud-init report (TensorDock VMs): configured, Wolf started.
        "configuration": {
            "reportedAt": now,
            "ready": True,
            "gamesMounted": False,
            "message": "configured",
        },
        "accessSecretName": access_secret_name(vm),
        "accessKeyId": "default",
        "attemptedProviders": ["tensordock"],
        "providerMetadata": {"status": "running", "port_forwards": f"22:1 47989:{wolf_port}"},
        "decision": {
            "chosenProvider": "tensordock",
            "chosenRegion": "us-central",
            "chosenPlacement": catalog.HOSTNODES[0].id,
            "failedPlacements": [],
            "candidates": [],
            "decidedAt": decided,
        },
        "message": "running",
        "conditions": conditions,
        "observedGeneration": 1,
    }


def run_steady(
    workdir: Path,
    n: int,
    seconds: float,
    limit_per_minute: int,
    config_manifest: dict[str, Any],
    log: Callable[[str], None],
    profile: Path | None = None,
    memory: Path | None = None,
) -> dict[str, Any]:
    """Start a private control plane, preload N running VMs, measure the operator
    (under cProfile, written to `profile` when the operator exits, when given; with
    tracemalloc's top allocation sites written to `memory` at the end, when given)."""
    stack = Stack(workdir / "stack", steps=default_steps(with_operator=False), progress=log)
    processes: list[ManagedProcess] = []
    try:
        stack.up(only=(*CONTROL_PLANE, "crds"))
        api = config.new_client_from_config(config_file=str(stack.kubeconfig))  # type: ignore[no-untyped-call]
        api.configuration.connection_pool_maxsize = 32
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 32
        stack.kubectl("create", "namespace", OPERATOR_NAMESPACE)
        stack.kubectl("create", "namespace", NAMESPACE)
        stack.kubectl("apply", "-f", "-", input_text=json.dumps(config_manifest))
        started = time.monotonic()
        names = [f"vm-{i:05d}" for i in range(n)]
        create_all(api, NAMESPACE, names, "nes", lambda _n, _t: None, finalizers=[FINALIZER])
        log(f"steady: {n} GameVMs created in {time.monotonic() - started:.0f}s")
        custom = client.CustomObjectsApi(api)
        sim, sim_port = preload(stack, custom, workdir, names, limit_per_minute)
        processes.append(sim)
        log(f"steady: statuses written after {time.monotonic() - started:.0f}s")
        sim_url = f"http://127.0.0.1:{sim_port}"
        before_start = stack.kubectl("get", "--raw", "/metrics", timeout=120).stdout
        operator = operator_process(
            workdir, stack, sim_url, limit_per_minute, profile=profile, memory=memory
        )
        processes.append(operator)
        pid = operator.pid or 0
        settled = start_and_settle(operator, stack, log, n)
        sim_pid = sim.pid or 0
        if memory is not None:
            write_memory_top(operator, memory, 0)  # snapshot 0: the window's start
        sim0, cpu0 = sim_requests(sim_url), procstats.sample_cpu(pid, sim_pid)
        if profile is not None:
            operator.signal(signal.SIGUSR2)  # the window only, not the start-up
        rss_series = sample_rss(pid, seconds)
        sim1, cpu1 = sim_requests(sim_url), procstats.sample_cpu(pid, sim_pid)
        if profile is not None:
            operator.signal(signal.SIGUSR2)
        after = stack.kubectl("get", "--raw", "/metrics", timeout=120).stdout
        minutes = (cpu1.at - cpu0.at) / 60
        writes = apimetrics.writes_between(settled, after)
        # A restart over statuses the operator wrote itself: none expected.
        startup_writes = apimetrics.writes_between(before_start, settled)
        requests = {k: sim1[k] - sim0.get(k, 0) for k in sim1 if sim1[k] > sim0.get(k, 0)}
        result = {
            "steady_n": n,
            "steady_running": count_running(custom),
            "steady_seconds": round(cpu1.at - cpu0.at, 1),
            "steady_rss_mb": round(procstats.rss_mb(pid), 1),
            "steady_peak_rss_mb": round(procstats.peak_rss_mb(pid), 1),
            "steady_rss_series_mb": rss_series,
            "steady_idle_cpu_pct": round(procstats.cpu_percent(cpu0, cpu1, pid), 2),
            "steady_provider_requests_per_min": round(sum(requests.values()) / minutes, 2),
            "steady_provider_requests": requests,
            "steady_api_writes_per_min": round(sum(writes.values()) / minutes, 2),
            "steady_api_writes": apimetrics.describe(writes),
            "steady_startup_api_writes": sum(startup_writes.values()),
            "steady_startup_api_writes_by_kind": apimetrics.describe(startup_writes),
            "steady_simulator_cpu_pct": round(procstats.cpu_percent(cpu0, cpu1, sim_pid), 2),
            "steady_load_average": os.getloadavg()[0],
        }
        log(f"steady: {result}")
        if memory is not None:
            write_memory_top(operator, memory, 1)
            append_memory_growth(memory)
        return result
    finally:
        for process in reversed(processes):
            process.stop(timeout=60)
        stack.down()


def operator_process(
    workdir: Path,
    stack: Stack,
    sim_url: str,
    limit_per_minute: int,
    *,
    profile: Path | None,
    memory: Path | None,
) -> ManagedProcess:
    """The operator of the steady run (profiled or traced when asked), started; its
    operations port is in `GAMEVM_HTTP_PORT` of its environment."""
    metrics_port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "KUBECONFIG": str(stack.kubeconfig),
            "GAMEVM_NAMESPACE": OPERATOR_NAMESPACE,
            "GAMEVM_WATCH_NAMESPACES": f'["{NAMESPACE}"]',
            "GAMEVM_TENSORDOCK_API_URL": f"{sim_url}/api/v2",
            "GAMEVM_TENSORDOCK_REQUESTS_PER_MINUTE": str(limit_per_minute),
            "GAMEVM_HTTP_HOST": "127.0.0.1",
            "GAMEVM_HTTP_PORT": str(metrics_port),
            # Its own API port: another operator on this machine may hold the default.
            "GAMEVM_API_HOST": "127.0.0.1",
            "GAMEVM_API_PORT": str(free_port()),
            "GAMEVM_WOLF_PROBE_ALLOW_LOOPBACK": "true",
            **(
                {"GAMEVM_BENCH_PROFILE": str(profile), "GAMEVM_BENCH_PROFILE_WINDOW": "1"}
                if profile
                else {}
            ),
            **({"GAMEVM_BENCH_TRACEMALLOC": str(memory)} if memory else {}),
        }
    )
    operator = ManagedProcess(
        name="steady-operator",
        command=(
            [sys.executable, str(REPO / "bench" / "profiled_operator.py")]
            if profile or memory
            else operator_command()
        ),
        log_path=workdir / "steady-operator.log",
        pid_path=workdir / "steady-operator.pid",
        env=env,
    )
    operator.start()
    return operator


def start_and_settle(
    operator: ManagedProcess, stack: Stack, log: Callable[[str], None], n: int
) -> str:
    """Wait for the operator's start-up, for every VM's first step, then for its writes
    to settle (a /metrics scrape).

    Quiet API writes mean nothing before the operator has started: a loaded machine can
    take longer than the quiet period to import and list. Nor do they say the start-up is
    over: a restart over statuses the operator wrote writes nothing, while it still lists,
    spawns and steps every VM (a window begun then measured that start-up too: 17.5 %
    idle CPU at 10,000 instead of ~9 %).
    """
    boot = time.monotonic()
    port = int((operator.env or {})["GAMEVM_HTTP_PORT"])
    wait_ready(port, alive=operator.running, timeout=600)
    wait_first_steps(port, n, alive=operator.running, timeout=900)
    log(f"steady: every VM stepped {time.monotonic() - boot:.0f}s after start")
    settled = settle(stack, limit_s=900)
    log(f"steady: operator settled {time.monotonic() - boot:.0f}s after start")
    return settled


def tracked_vms(exposition: str) -> float:
    """The VMs the operator's `gamevm_vms` gauge counts: each one after its first step."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("gamevm_vms{")
    )


def wait_first_steps(port: int, n: int, alive: Callable[[], bool], timeout: float) -> None:
    """Until the operator has stepped all N VMs (its /metrics `gamevm_vms` sums to N)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                if tracked_vms(resp.read().decode()) >= n:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(2)
    raise RuntimeError(f"the steady operator did not step all {n} VMs")


def preload(
    stack: Stack,
    custom: client.CustomObjectsApi,
    workdir: Path,
    names: list[str],
    limit_per_minute: int,
) -> tuple[ManagedProcess, int]:
    """Start the simulator holding a running instance per GameVM; write each one's status."""
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, GAMEVM_PLURAL)
    uids = {item["metadata"]["name"]: item["metadata"]["uid"] for item in listed["items"]}
    ids = {name: str(uuid.uuid4()) for name in names}
    node = catalog.HOSTNODES[0].id
    rows = [{"id": ids[m], "name": instance_name(uids[m]), "hostnode_id": node} for m in names]
    path = workdir / "preload.json"
    path.write_text(json.dumps(rows))
    token = secrets.token_urlsafe(16)
    for _attempt in range(3):
        # A free port can be taken by another process before the simulator binds it.
        wolf_port, sim_port = free_port(), free_port()
        sim = start_sim(workdir, path, wolf_port, sim_port, token, limit_per_minute)
        try:
            wait_healthy(sim_port, alive=sim.running)
            break
        except RuntimeError:
            sim.stop()
    else:
        raise RuntimeError(f"steady simulator did not start; see {workdir / 'steady-sim.log'}")
    stack.kubectl("apply", "-f", "-", input_text=json.dumps(credentials_secret(token, {})))
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")

    def patch(name: str) -> None:
        body = {"status": vm_status(name, uids[name], ids[name], wolf_port, now)}
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, GAMEVM_PLURAL, name, body
        )

    with ThreadPoolExecutor(PATCH_THREADS) as pool:
        list(pool.map(patch, names))
    return sim, sim_port


def start_sim(
    workdir: Path, preload: Path, wolf_port: int, sim_port: int, token: str, limit: int
) -> ManagedProcess:
    """The preloaded simulator (bench/steady_tensordock.py) on `sim_port`."""
    sim = ManagedProcess(
        name="tensordock-steady",
        command=[
            sys.executable,
            str(REPO / "bench" / "steady_tensordock.py"),
            "--preload",
            str(preload),
            "--wolf-port",
            str(wolf_port),
            "--host",
            "127.0.0.1",
            "--port",
            str(sim_port),
            # One argument: a token starting with "-" (1 in 64) would read as an option.
            f"--token={token}",
            "--delay-scale",
            "0",
            "--rate-limit",
            str(limit),
        ],
        log_path=workdir / "steady-sim.log",
        pid_path=workdir / "steady-sim.pid",
    )
    sim.start()
    return sim


def settle(stack: Stack, *, quiet_s: float = 10.0, limit_s: float = 900.0) -> str:
    """A /metrics scrape once the API server saw no write for `quiet_s` (start-up done)."""
    time.sleep(quiet_s)
    deadline = time.monotonic() + limit_s
    previous = stack.kubectl("get", "--raw", "/metrics", timeout=120).stdout
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        current = stack.kubectl("get", "--raw", "/metrics", timeout=120).stdout
        if sum(apimetrics.writes_between(previous, current).values()) <= 2:
            return current
        previous = current
    return previous


def sim_requests(url: str) -> dict[str, int]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/_sim/stats", timeout=30) as resp:  # noqa: S310
        stats = json.loads(resp.read())
    return {str(k): int(v) for k, v in stats["requests"].items()}


def wait_healthy(
    port: int, timeout: float = 120.0, alive: Callable[[], bool] = lambda: True
) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("steady simulator did not start")


def count_running(custom: client.CustomObjectsApi) -> int:
    """GameVMs whose status says running."""
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, GAMEVM_PLURAL)
    return sum(1 for item in listed["items"] if item.get("status", {}).get("phase") == "running")


def wait_ready(port: int, alive: Callable[[], bool], timeout: float) -> None:
    """Until the operator's /healthz answers 200 (start-up done)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            url = f"http://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(1)
    raise RuntimeError("steady operator did not become ready")


def sample_rss(pid: int, seconds: float, every: float = 15.0) -> list[float]:
    """Operator VmRSS (MiB) at the start of the window, every `every` s, and at its end:
    growth at steady state shows here."""
    end = time.monotonic() + seconds
    series = [round(procstats.rss_mb(pid), 1)]
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(every, left))
        series.append(round(procstats.rss_mb(pid), 1))
    return series


def write_memory_top(operator: ManagedProcess, path: Path, k: int) -> None:
    """Ask the traced operator for its top allocation sites and snapshot `k` (SIGUSR1)."""
    done = path.with_name(f"{path.name}.{k}.done")
    operator.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not done.exists():
        time.sleep(0.5)


def append_memory_growth(path: Path, top: int = 25) -> None:
    """What live memory grew by between the window's two snapshots (a leak per probe, step
    or Event shows as a site that grows with time), appended to the top-sites file."""
    import tracemalloc

    first, last = (path.with_name(f"{path.name}.{k}.snap") for k in (0, 1))
    if not (first.exists() and last.exists()):
        return
    diff = tracemalloc.Snapshot.load(str(last)).compare_to(
        tracemalloc.Snapshot.load(str(first)), "lineno"
    )
    growth = sum(stat.size_diff for stat in diff)
    lines = ["", f"growth over the window: {growth / 2**20:+.2f} MiB (top sites by growth)"]
    lines += [str(stat) for stat in sorted(diff, key=lambda d: -d.size_diff)[:top]]
    with path.open("a") as out:
        out.write("\n".join(lines) + "\n")


def main() -> None:
    """`python -m bench.steady N [SECONDS] [--profile FILE.prof] [--memory FILE.txt]`: the
    steady run alone; prints its JSON (and the profile's top functions with --profile)."""
    import argparse
    import pstats
    import shutil
    import tempfile

    from bench.run import bench_config, log

    parser = argparse.ArgumentParser(description="the steady run alone")
    parser.add_argument("n", type=int)
    parser.add_argument("seconds", type=float, nargs="?", default=180.0)
    parser.add_argument("--profile", type=Path, help="cProfile output (.prof)")
    parser.add_argument("--memory", type=Path, help="tracemalloc top sites (.txt)")
    parser.add_argument(
        "--untraced",
        action="store_true",
        help="with --memory: no tracemalloc, only malloc_info and pymalloc statistics",
    )
    parser.add_argument(
        "--frames", type=int, default=1, help="with --memory: frames kept per allocation"
    )
    args = parser.parse_args()
    # The traced operator inherits this environment (bench/profiled_operator.py).
    os.environ["GAMEVM_BENCH_TRACEMALLOC_FRAMES"] = str(args.frames)
    if args.untraced:
        os.environ["GAMEVM_BENCH_UNTRACED"] = "1"
    workdir = Path(tempfile.mkdtemp(prefix="gamevm-steady-"))
    try:
        result = run_steady(
            workdir, args.n, args.seconds, 100, bench_config(), log, args.profile, args.memory
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.profile is not None and args.profile.exists():
        stats = pstats.Stats(str(args.profile), stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
    if args.memory is not None and args.memory.exists():
        print(args.memory.read_text(), file=sys.stderr)


if __name__ == "__main__":
    main()
