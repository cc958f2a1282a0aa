"""`make bench`: our operator against the bare-kopf floor, N GameVMs applied at once.

Run: `.venv/bin/python bench/run.py [--n 100 --n 1000] [--idle-seconds 30] [--profile]`
(default N: 100 and 1000; `--n 50` for a quick run).

For each N, on a private local control plane (etcd, kube-apiserver, controller manager,
CRDs) and a zero-delay TensorDock simulator with scaled-up capacity:
1. the floor (bench/floor_operator.py) sets status.phase=running on N GameVMs;
2. `gamevm-operator run` provisions N GameVMs to running.
Measured: seconds from the first create to the last VM seen running (a watch), per-VM
latency (create response -> running seen; the response marks creationTimestamp to
sub-second precision, which the 1 s creationTimestamp itself does not), write requests
counted by kube-apiserver's /metrics (`apiserver_request_total`, leases excluded), peak
RSS (VmHWM) and, for ours, idle CPU over `--idle-seconds` with every VM running under
its auto-stop timer. Writes bench/results/latest.json and latest.png.

`--profile` runs our operator under cProfile (bench/profiled_operator.py) and prints
the top functions; figures from a profiled run are slower, so do not publish them.
"""

import argparse
import http.client
import json
import os
import pstats
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402
from kubernetes import client, config  # noqa: E402

from bench import apimetrics, procstats, report  # noqa: E402
from bench.stats import percentile  # noqa: E402
from bench.steady import run_steady  # noqa: E402
from bench.workload import RunningWatch, create_all  # noqa: E402
from gamevm.models.names import GAMEVM_PLURAL, GROUP, VERSION  # noqa: E402
from gamevm_dev.devstack.processes import ManagedProcess  # noqa: E402
from gamevm_dev.devstack.stack import Stack  # noqa: E402
from gamevm_dev.devstack.steps import CONTROL_PLANE, default_steps  # noqa: E402
from gamevm_dev.simulators.ports import free_port  # noqa: E402
from tests.fixtures.operator_env import (  # noqa: E402
    OPERATOR_NAMESPACE,
    credentials_secret,
    premium_config,
)
from tests.fixtures.stack import operator_command  # noqa: E402

RESULTS = REPO / "bench" / "results"
CONSOLE = "nes"
"""A retro console: 2 vCPU, no GPU, so the simulator's scaled catalogue holds every VM."""
SETTLE_S = 5.0
"""Pause before and after a measurement so start-up and trailing writes stay outside it."""
VMS_PER_SCALE = 30
"""Every player is in Dallas and the nearest stock hostnode holds 32 retro VMs (64 vCPU,
4000 GB disk at 100 GB each): scale so that it holds every VM of the run. Otherwise the
benchmark measures capacity fallbacks (create refused, re-select), not the operator."""


def log(line: str) -> None:
    print(f"[bench] {line}", file=sys.stderr, flush=True)


@dataclass
class Bench:
    """The shared environment of one `make bench`."""

    stack: Stack
    api: client.ApiClient
    workdir: Path
    idle_seconds: float
    profile: bool
    timeout_per_vm: float
    memory: bool
    limit_per_minute: int = 100
    mongo_uri: str | None = None
    operator_ports: dict[str, int] = field(default_factory=dict)

    def kubectl_apply(self, manifest: dict[str, object]) -> None:
        self.stack.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest))

    def scrape(self) -> str:
        return self.stack.kubectl("get", "--raw", "/metrics", timeout=60).stdout

    def event_reasons(self, namespace: str) -> dict[str, int]:
        """Events in a namespace, counted by reason."""
        events = client.CoreV1Api(self.api).list_namespaced_event(namespace)
        return dict(Counter(str(e.reason) for e in events.items))

    def object_bytes(self, namespace: str) -> int:
        """JSON size of one GameVM as stored (what every watch event carries)."""
        obj = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, GAMEVM_PLURAL, "vm-00000"
        )
        return len(json.dumps(obj, separators=(",", ":")))

    def control_plane_pids(self) -> dict[str, int]:
        pids = {}
        for step in self.stack.steps:
            for process in step.processes(self.stack):
                if process.pid is not None and process.running():
                    pids[process.name] = process.pid
        return pids


@dataclass
class Simulator:
    """A running TensorDock simulator."""

    process: ManagedProcess
    url: str
    token: str

    @property
    def pid(self) -> int:
        """The simulator's pid (0 when it is not running)."""
        return self.process.pid or 0

    def requests(self) -> dict[str, int]:
        """Requests served so far, per route."""
        root = self.url.removesuffix("/api/v2")
        with urllib.request.urlopen(f"{root}/_sim/stats", timeout=10) as resp:  # noqa: S310
            stats = json.loads(resp.read())
        return {str(k): int(v) for k, v in stats["requests"].items()}


@contextmanager
def simulator(bench: Bench, n: int, rate_limit: int = 1_000_000) -> Iterator[Simulator]:
    """A fresh simulator for one run (its cost per request grows with the instances it
    holds), room for N VMs, and the credentials Secret holding its token."""
    process, url, token = start_simulator(bench.workdir, max(1, -(-n // VMS_PER_SCALE)), rate_limit)
    try:
        bench.kubectl_apply(credentials_secret(token, {}))
        yield Simulator(process, url, token)
    finally:
        process.stop()


def start_simulator(
    workdir: Path, scale: int, rate_limit: int = 1_000_000
) -> tuple[ManagedProcess, str, str]:
    """The scaled TensorDock simulator on a free loopback port; (process, base URL, token)."""
    token = secrets.token_urlsafe(16)
    port = free_port()
    process = ManagedProcess(
        name="tensordock-sim",
        command=[
            sys.executable,
            str(REPO / "bench" / "scaled_tensordock.py"),
            "--scale",
            str(scale),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            # One argument: a token starting with "-" (1 in 64) would read as an option.
            f"--token={token}",
            "--delay-scale",
            "0",
            "--rate-limit",
            str(rate_limit),
        ],
        log_path=workdir / "tensordock-sim.log",
        pid_path=workdir / "tensordock-sim.pid",
    )
    process.start()
    # Its start-up (imports, the scaled catalog) took over 30 s at load 8.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/_sim/health")
            if conn.getresponse().status == 200:
                return process, f"http://127.0.0.1:{port}/api/v2", token
        except OSError:
            pass
        if not process.running():
            break
        time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"TensorDock simulator did not start; see {process.log_path}")


def wait_for_log(process: ManagedProcess, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in process.log_path.read_text(errors="replace"):
            return
        if not process.running():
            break
        time.sleep(0.1)
    raise RuntimeError(f"{process.name}: {text!r} not logged; see {process.log_path}")


@contextmanager
def operator(
    bench: Bench, kind: str, namespace: str, sim: Simulator | None
) -> Iterator[ManagedProcess]:
    """Our operator or the floor, watching `namespace` only; stopped by pid on exit."""
    env = dict(os.environ)
    env["KUBECONFIG"] = str(bench.stack.kubeconfig)
    if kind == "floor":
        command = [sys.executable, str(REPO / "bench" / "floor_operator.py"), namespace]
        ready = "floor operator started"
    else:
        assert sim is not None  # noqa: S101  # measure() starts one for our operator
        port = bench.operator_ports[namespace] = free_port()
        api_port = free_port()
        env.update(
            {
                "GAMEVM_NAMESPACE": OPERATOR_NAMESPACE,
                "GAMEVM_WATCH_NAMESPACES": f'["{namespace}"]',
                "GAMEVM_TENSORDOCK_API_URL": sim.url,
                # The simulator allows 1e6/min; TensorDock's real 100/min would make this
                # a benchmark of the rate limit, not of the operator.
                "GAMEVM_TENSORDOCK_REQUESTS_PER_MINUTE": "1000000",
                "GAMEVM_HTTP_HOST": "127.0.0.1",
                "GAMEVM_WOLF_PROBE_ALLOW_LOOPBACK": "true",
                # All simulated VMs report from 127.0.0.1: no per-source limit.
                "GAMEVM_HEARTBEAT_RATE_PER_SECOND": "1000000",
                "GAMEVM_HEARTBEAT_BURST": "1000000",
                # One operator per measured namespace: no Lease to wait for.
                "GAMEVM_LEADER_ELECTION": "false",
                "GAMEVM_HTTP_PORT": str(port),
                # The simulated VMs POST their configuration report to the API port
                # (docs/wolf-host.md).
                "GAMEVM_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
                "GAMEVM_API_HOST": "127.0.0.1",
                "GAMEVM_API_PORT": str(api_port),
            }
        )
        if kind == "limited":
            # TensorDock's real limit, on both sides, and the Mongo mirror on.
            env["GAMEVM_TENSORDOCK_REQUESTS_PER_MINUTE"] = str(bench.limit_per_minute)
            if bench.mongo_uri:
                env["GAMEVM_MONGODB_URI"] = bench.mongo_uri
                env["GAMEVM_MONGODB_DATABASE"] = namespace.replace("-", "_")
        command = operator_command()
        if kind == "tuned":
            command = [sys.executable, str(REPO / "bench" / "tuned_operator.py")]
            if "arena" in os.environ.get("GAMEVM_BENCH_FIXES", "arena"):
                # glibc gives each of the 16 Kubernetes client threads its own malloc
                # arena; two arenas keep RSS down (an environment setting, no code).
                env["MALLOC_ARENA_MAX"] = "2"
        if bench.profile:
            env["GAMEVM_BENCH_PROFILE"] = str(bench.workdir / f"{namespace}.prof")
        if bench.memory:
            env["GAMEVM_BENCH_TRACEMALLOC"] = str(bench.workdir / f"{namespace}.memory.txt")
        if bench.profile or bench.memory:
            command = [sys.executable, str(REPO / "bench" / "profiled_operator.py")]
        ready = "gamevm-operator started"
    process = ManagedProcess(
        name=kind,
        command=command,
        log_path=bench.workdir / f"{namespace}.log",
        pid_path=bench.workdir / f"{namespace}.pid",
        env=env,
    )
    process.start()
    try:
        wait_for_log(process, ready, timeout=60)
        yield process
    finally:
        process.stop(timeout=60)


def measure(bench: Bench, kind: str, n: int) -> report.RunResult:
    """Provision N GameVMs with one operator and measure it."""
    namespace = f"bench-{kind}-{n}-{secrets.token_hex(2)}"
    bench.stack.kubectl("create", "namespace", namespace)
    names = [f"vm-{i:05d}" for i in range(n)]
    created: dict[str, float] = {}
    with ExitStack() as running:
        limited = kind == "limited"
        sim = (
            None
            if kind == "floor"
            else running.enter_context(
                simulator(bench, n, bench.limit_per_minute if limited else 1_000_000)
            )
        )
        process = running.enter_context(operator(bench, kind, namespace, sim))
        pid = process.pid or 0
        time.sleep(SETTLE_S)
        pids = {kind: pid, **bench.control_plane_pids(), "simulator": sim.pid if sim else 0}
        cpu_before = {name: procstats.cpu_seconds(p) for name, p in pids.items() if p}
        metrics_before = bench.scrape()
        sim_before = sim.requests() if sim else {}
        watcher = RunningWatch(bench.api, namespace, n)
        watcher.start()
        started = time.time()
        create_all(bench.api, namespace, names, CONSOLE, created.__setitem__)
        create_s = time.time() - started
        # At the limit every VM needs about two requests (create, one look for its IP).
        complete = watcher.all_running.wait(
            timeout=30 + n * (3 * 60 / bench.limit_per_minute if limited else bench.timeout_per_vm)
        )
        watcher.stop()
        dump_trace(bench.workdir / f"{namespace}-trace.json", watcher, created, f"{kind} N={n}")
        seen = dict(watcher.running)
        finished = max(seen.values()) if seen else time.time()
        metrics_after = bench.scrape()
        sim_after = sim.requests() if sim else {}
        cpu_after = {name: procstats.cpu_seconds(p) for name, p in pids.items() if p}
        # Writes caused by provisioning include Events kopf still has queued: count
        # until the API server has seen no write for a few seconds.
        settled = quiet_metrics(bench)
        rss = procstats.peak_rss_mb(pid)
        if bench.memory and kind != "floor":
            memory_top(process, bench.workdir / f"{namespace}.memory.txt")
        idle_cpu, idle_writes, idle_detail = None, None, ""
        figures: dict[str, object] = (
            {"mongo_vm_writes": mirror_writes(bench.operator_ports[namespace])} if limited else {}
        )
        with observation(sim if limited else None, figures):
            if kind != "floor" and complete and bench.idle_seconds > 0:
                idle_cpu, idle_writes, idle_detail = idle(bench, pid, settled)
                rss = procstats.peak_rss_mb(pid)
        figures.update(limited_log_figures(process) if limited else {})
    if not complete:
        log(f"{kind} N={n}: only {len(seen)} of {n} running; see {process.log_path}")
    writes = apimetrics.writes_between(metrics_before, settled)
    total, creates = sum(writes.values()), writes.get(("POST", "gamevms", ""), 0)
    at_running = sum(apimetrics.writes_between(metrics_before, metrics_after).values())
    latencies = [seen[name] - created[name] for name in seen if name in created]
    result = report.RunResult(
        kind=kind,
        n=n,
        complete=complete,
        all_running_s=finished - started,
        create_s=create_s,
        p50_s=percentile(latencies, 50) if latencies else float("nan"),
        p99_s=percentile(latencies, 99) if latencies else float("nan"),
        writes=total,
        writes_per_vm=total / n,
        operator_writes_per_vm=(total - creates) / n,
        writes_at_running_per_vm=at_running / n,
        writes_detail=apimetrics.describe(writes),
        rss_mb=rss,
        idle_cpu_pct=idle_cpu,
        idle_writes=idle_writes,
        idle_writes_detail=idle_detail,
        cpu_s={name: round(cpu_after[name] - cpu_before[name], 2) for name in cpu_after},
        latencies_s=latencies,
        sim_requests={
            route: sim_after[route] - sim_before.get(route, 0)
            for route in sim_after
            if sim_after[route] > sim_before.get(route, 0)
        },
        event_reasons=bench.event_reasons(namespace),
        server_time=apimetrics.describe_seconds(
            apimetrics.server_seconds_between(metrics_before, metrics_after)
        ),
        object_bytes=bench.object_bytes(namespace),
        load_average=os.getloadavg()[0],
        figures=figures,
    )
    if limited:
        limited_figures(result, writes, bench.limit_per_minute)
    finish(bench, namespace, result)
    return result


def limited_log_figures(process: ManagedProcess) -> dict[str, object]:
    """What the operator's log tells of the limit: how often a 429 slowed the budget."""
    return {"rate_limit_429s": process.log_path.read_text().count("budget: 429")}


@contextmanager
def observation(sim: Simulator | None, figures: dict[str, object]) -> Iterator[None]:
    """Provider requests per minute while the block runs (every VM running: observation)."""
    if sim is None:
        yield
        return
    before, started = sim.requests(), time.monotonic()
    yield
    minutes = (time.monotonic() - started) / 60
    after = sim.requests()
    figures["observe_requests"] = {
        k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)
    }
    observed = sum(after.values()) - sum(before.values())
    figures["observe_requests_per_min"] = round(observed / max(minutes, 1e-9), 2)


def mirror_writes(port: int) -> int:
    """Mongo writes of GameVM documents so far, from the operator's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("gamevm_mirror_writes_total{") and 'collection="vm"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def limited_figures(
    result: report.RunResult, writes: dict[tuple[str, str, str], int], per_minute: int
) -> None:
    """The rate-limited run's figures: requests per VM, the limit's floor, Mongo writes."""
    n = result.n
    requests = sum(result.sim_requests.values())
    # The floor: N creates at the limit, plus the least sharing can do (one offer listing,
    # GET /locations and /hostnodes, and one instance list proving every name absent).
    floor_s = 60 * (n + 3) / per_minute
    changes = sum(count for (_, resource, _), count in writes.items() if resource == "gamevms")
    status_changes = writes.get(("PATCH", "gamevms", "status"), 0)
    mongo = result.figures.get("mongo_vm_writes")
    result.figures.update(
        {
            "limited_floor_s": round(floor_s, 1),
            "limited_ratio": round(result.all_running_s / floor_s, 3),
            "provider_requests_per_vm": round(requests / n, 3),
            "provider_requests_per_min": round(requests / (result.all_running_s / 60), 1),
            "gamevm_changes": changes,
            "status_changes": status_changes,
            # Per status change (each status patch is one); creates and finalizer patches
            # are object changes too, mostly coalesced into the next write.
            "mongo_writes_per_change": (
                round(float(mongo) / status_changes, 3)
                if isinstance(mongo, int) and status_changes
                else None
            ),
            "mongo_writes_per_object_change": (
                round(float(mongo) / changes, 3) if isinstance(mongo, int) and changes else None
            ),
        }
    )


def finish(bench: Bench, namespace: str, result: report.RunResult) -> None:
    """Log the run's figures, print the profile, delete the floor's namespace."""
    kind, n = result.kind, result.n
    log(
        f"{kind} N={n}: all running in {result.all_running_s:.2f}s (creates took "
        f"{result.create_s:.2f}s); writes {result.writes_detail}; CPU s {result.cpu_s}; "
        f"simulator requests {result.sim_requests}; "
        f"Events {result.event_reasons}; API server time {result.server_time}; "
        f"GameVM size {result.object_bytes} B; load average {result.load_average:.1f}"
    )
    if result.figures:
        log(f"{kind} N={n}: {result.figures}")
    if result.idle_cpu_pct is not None:
        log(
            f"{kind} N={n}: idle CPU {result.idle_cpu_pct:.2f}% of one core; "
            f"idle writes {result.idle_writes_detail}"
        )
    if kind == "floor":
        # Wait: the namespace controller's deletes would otherwise land in the next window.
        bench.stack.kubectl("delete", "namespace", namespace, "--timeout=600s", timeout=660)
    if kind != "floor" and bench.profile:
        print_profile(bench.workdir / f"{namespace}.prof")


def dump_trace(path: Path, watcher: RunningWatch, created: dict[str, float], label: str) -> None:
    """Every watch event per VM (seconds after its create) and the traced object's versions."""
    if watcher.errors:
        log(f"{label}: the watch was re-opened {len(watcher.errors)} times: {watcher.errors[:3]}")
    timeline = {
        name: [(round(t - created.get(name, t), 3), kind, phase) for t, kind, phase in events]
        for name, events in watcher.history.items()
    }
    path.write_text(json.dumps({"timeline": timeline, "traced": watcher.traced}, indent=1))


def quiet_metrics(bench: Bench, quiet_s: float = 3.0, limit_s: float = 120.0) -> str:
    """A /metrics scrape taken after `quiet_s` without writes (or after `limit_s`)."""
    time.sleep(SETTLE_S)
    deadline = time.monotonic() + limit_s
    previous = bench.scrape()
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        current = bench.scrape()
        if not apimetrics.writes_between(previous, current):
            return current
        previous = current
    return previous


def idle(bench: Bench, pid: int, before: str) -> tuple[float, int, str]:
    """Idle CPU (% of one core) and writes over `idle_seconds`, every VM running.

    `before` is a scrape taken once the API server had seen no write for a few seconds
    (kopf posts Events from a queue, still draining when the last VM reports running).
    """
    cpu0 = procstats.sample_cpu(pid)
    time.sleep(bench.idle_seconds)
    cpu1 = procstats.sample_cpu(pid)
    writes = apimetrics.writes_between(before, bench.scrape())
    cpu = procstats.cpu_percent(cpu0, cpu1, pid)
    return cpu, sum(writes.values()), apimetrics.describe(writes)


def memory_top(process: ManagedProcess, path: Path) -> None:
    """Ask the traced operator for its top allocation sites (SIGUSR1) and print them."""
    process.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.5)
    time.sleep(1)
    print(path.read_text() if path.exists() else f"no memory report at {path}", file=sys.stderr)


def print_profile(path: Path) -> None:
    if not path.exists():
        log(f"no profile at {path}")
        return
    stats = pstats.Stats(str(path), stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def bench_config() -> dict[str, object]:
    """The one EmulatorConfig: TensorDock only, retro preset (2 vCPU, no GPU)."""
    return premium_config(
        CONSOLE,
        preferredProviders=[{"provider": "tensordock", "priority": 1, "costPerHourLimit": 2.0}],
        defaultPreset="retro",
        minCpu=2,
        minRamGb=4,
        requiresGpu=False,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append", help="GameVMs (repeatable)")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--timeout-per-vm", type=float, default=1.0, help="seconds per VM")
    parser.add_argument("--profile", action="store_true", help="cProfile our operator")
    parser.add_argument(
        "--memory", action="store_true", help="tracemalloc top sites of ours when all run"
    )
    parser.add_argument("--only", choices=("ours", "floor", "tuned"), help="one operator only")
    parser.add_argument(
        "--tuned",
        action="store_true",
        help="also measure ours with the proposed fixes (bench/tuned_operator.py)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--limited",
        type=int,
        default=1000,
        help="GameVMs for the run at the provider's real limit, mirror on (0: skip)",
    )
    parser.add_argument(
        "--limit-per-minute", type=int, default=100, help="TensorDock requests/min (real: 100)"
    )
    parser.add_argument(
        "--steady", type=int, default=10000, help="GameVMs kept running in the steady run (0: skip)"
    )
    # One round of activity checks: GAMEVM_ACTIVITY_MAX_INTERVAL apart (300 s by default).
    parser.add_argument("--steady-seconds", type=float, default=300.0)
    return parser.parse_args(argv)


def print_limited(results: list[report.RunResult], per_minute: int) -> None:
    """The limited run's figures, with --only too: a quick limited run says where the
    provider path stands without writing latest.json."""
    limited_run = next((r for r in results if r.kind == "limited"), None)
    if limited_run is not None:
        print(json.dumps(report.limited_summary(limited_run, per_minute)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sorted(set(args.n or [100, 1000]))
    workdir = Path(tempfile.mkdtemp(prefix="gamevm-bench-"))
    stack = Stack(workdir / "stack", steps=default_steps(with_operator=False), progress=log)
    results: list[report.RunResult] = []
    steady_result: dict[str, object] = {}
    steady_thread: threading.Thread | None = None
    try:
        stack.up(only=(*CONTROL_PLANE, "crds", *(["mongo"] if args.limited else [])))
        kinds = [args.only] if args.only else ["floor", "ours", *(["tuned"] if args.tuned else [])]
        api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(stack.kubeconfig)
        )
        api.configuration.connection_pool_maxsize = 32
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 32
        bench = Bench(
            stack,
            api,
            workdir,
            args.idle_seconds,
            args.profile,
            args.timeout_per_vm,
            args.memory,
            limit_per_minute=args.limit_per_minute,
            mongo_uri=stack.state.exports.get("GAMEVM_MONGODB_URI"),
        )
        stack.kubectl("create", "namespace", OPERATOR_NAMESPACE)
        bench.kubectl_apply(bench_config())
        for n in sizes:
            for kind in kinds:
                log(f"{kind}: N={n}")
                results.append(measure(bench, kind, n))
        if args.steady:
            # Its own control plane, side by side with the limited run: that run spends
            # its time waiting for the provider's limit, not on CPU.
            steady_thread = threading.Thread(
                target=lambda: steady_result.update(
                    run_steady(
                        workdir / "steady",
                        args.steady,
                        args.steady_seconds,
                        args.limit_per_minute,
                        bench_config(),
                        log,
                        workdir / "steady.prof" if args.profile else None,
                    )
                ),
                name="steady",
            )
            steady_thread.start()
        if args.limited:
            log(f"limited: N={args.limited} at {args.limit_per_minute} requests/min")
            bench.idle_seconds = max(args.idle_seconds, 60.0)
            results.append(measure(bench, "limited", args.limited))
        if steady_thread is not None:
            steady_thread.join()
            if args.profile:
                print_profile(workdir / "steady.prof")
        print(report.table(results))
        print_limited(results, args.limit_per_minute)
        if not args.only:
            headline = report.summary(results)
            print()
            print("\n".join(report.target_lines(headline)))
            limited_run = next((r for r in results if r.kind == "limited"), None)
            extra = {
                "console": CONSOLE,
                "idle_seconds": args.idle_seconds,
                "cpus": os.cpu_count(),
                "load_average": list(os.getloadavg()),
                **report.limited_summary(limited_run, args.limit_per_minute),
                **steady_result,
            }
            print("\n".join(report.scale_target_lines(extra)))
            RESULTS.mkdir(parents=True, exist_ok=True)
            report.write_json(RESULTS / "latest.json", results, extra)
            report.plot(RESULTS / "latest.png", results)
            print(f"\nwrote {RESULTS / 'latest.json'} and {RESULTS / 'latest.png'}")
    finally:
        stack.down()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
