"""Chaos: the operator under crashes, provider faults, a MongoDB outage and an API server
restart, against the real API server, MongoDB-compatible server and simulators.

Small by default (they run in every `make test`); `GAMEVM_CHAOS_SCALE=large` runs the
published sizes (30 VMs, 15 kills, a 60 s MongoDB outage). Figures are printed with a
`[chaos]` prefix (`pytest -s` shows them).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from typing import Any

import pytest
from pymongo import MongoClient

from gamevm.main import EXIT_LOST_LEADERSHIP, HARD_EXIT_AFTER_LOSS_SECONDS
from gamevm.models.documents import VM_COLLECTION
from tests.fixtures.chaos import (
    MirroredOperator,
    VMFleet,
    api_requests,
    chaos_scale,
    instance_names_by_vm,
    log_matches,
    report,
    restart_kube_apiserver,
    set_faults,
    sim_created_by_vm,
    sim_listing,
    sim_live_by_vm,
    sim_stats,
    started_count,
    wait_started,
)
from tests.fixtures.operator_env import OperatorUnderTest
from tests.fixtures.stack import KubeStack

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

SEED = 20261126
MAX_REQUESTS_PER_VM = 60
"""Bound on simulator API requests per VM lifecycle (create -> running -> delete) under
the fault mix of `test_provider_faults_converge_without_crash_loop`. Measured: about 16
per VM without faults (10 VMs), 25-37 per VM with them; each retry is one more request,
so an unbounded retry loop blows through this at once."""


def _one_live_instance_each(
    op: OperatorUnderTest, fleet: VMFleet, bodies: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Assert exactly one live instance per GameVM, at the provider its status names, and
    none at the other simulator; returns the TensorDock listing."""
    listing = sim_listing(op.tensordock)
    names = instance_names_by_vm(bodies)
    live = sim_live_by_vm(listing, names)
    cloudypad = {i["name"] for i in op.cloudypad.instances() if i["provisioned"]}
    wrong = {}
    for vm, body in bodies.items():
        on_tensordock = body["status"].get("provider") == "tensordock"
        counts = (live[vm], int(names[vm] in cloudypad))
        if counts != ((1, 0) if on_tensordock else (0, 1)):
            wrong[vm] = f"{counts[0]} live at TensorDock, {counts[1]} at CloudyPad"
    if wrong:
        details = [
            f"{vm}: {what}; status {_brief_status(bodies[vm])}" for vm, what in wrong.items()
        ]
        details.append(fleet.explain(wrong, bodies))
        at_sim = [
            {k: i.get(k) for k in ("id", "name", "status", "deleted")} for i in listing["instances"]
        ]
        pytest.fail(
            "exactly one live instance per GameVM expected:\n"
            + "\n".join(details)
            + f"\nTensorDock instances: {at_sim}\nCloudyPad instances: {sorted(cloudypad)}",
            pytrace=False,
        )
    live_ids = {i["name"]: i["id"] for i in listing["instances"] if not i.get("deleted")}
    for vm, body in bodies.items():
        if body["status"].get("provider") == "tensordock":
            assert body["status"]["providerInstanceId"] == live_ids[names[vm]], vm
    return listing


def _providers(bodies: dict[str, dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(str(b["status"].get("provider")) for b in bodies.values()))


def _brief_status(body: dict[str, Any]) -> dict[str, Any]:
    status = body.get("status", {})
    keys = ("phase", "provider", "providerInstanceId", "instanceName", "message")
    brief = {k: status.get(k) for k in keys}
    candidates = (status.get("decision") or {}).get("candidates", [])
    brief["rejected"] = [
        f"{c.get('provider')}: {c.get('reason')}" for c in candidates if not c.get("accepted")
    ][:4]
    return brief


def _no_live_instances(op: OperatorUnderTest, bodies: dict[str, dict[str, Any]]) -> None:
    listing = sim_listing(op.tensordock)
    names = instance_names_by_vm(bodies)
    live = sim_live_by_vm(listing, names)
    left = {vm: n for vm, n in live.items() if n}
    assert not left, f"instances left at the TensorDock simulator after delete: {left}"
    cloudypad = {i["name"] for i in op.cloudypad.instances() if i["provisioned"]}
    left_cp = sorted(vm for vm, name in names.items() if name in cloudypad)
    assert not left_cp, f"instances left at the CloudyPad simulator after delete: {left_cp}"
    assert op.cloudypad.wolf_pids() == [], "CloudyPad Wolf responders left running"
    report(f"after delete: TensorDock simulator counts {listing['counts']}")


def _batches(names: list[str], parts: int) -> list[list[str]]:
    size = -(-len(names) // parts)
    return [names[i : i + size] for i in range(0, len(names), size)]


def test_sigkill_storm_while_provisioning(
    chaos_operator: OperatorUnderTest, fleet: VMFleet
) -> None:
    """(a) SIGKILL at seeded random moments while VMs provision; one instance each."""
    scale = chaos_scale()
    rng = random.Random(SEED)
    op = chaos_operator.process
    started = time.monotonic()
    # Latency with jitter stretches provisioning so the kills land in every step of it.
    set_faults(chaos_operator.tensordock, {"latency_ms": 50, "jitter_ms": 300, "seed": SEED})
    names = [f"kill-{i:02d}" for i in range(scale.vms)]
    batches = _batches(names, 3)
    runs = 1
    phases_at_kill: Counter[str] = Counter()
    for kill in range(scale.kills):
        if kill < len(batches):
            fleet.apply(batches[kill], autoStopTimeout=3600)
        if rng.random() < 0.75:
            wait_started(op, runs)  # kill a run that is working ...
            time.sleep(rng.uniform(0.0, 1.2))
        else:
            time.sleep(rng.uniform(0.1, 2.0))  # ... or one anywhere in start-up
        phases_at_kill.update(str(p) for p in fleet.phases().values())
        op.kill()
        op.restart()
        runs += 1
    kills_done = time.monotonic() - started
    set_faults(chaos_operator.tensordock, {})
    bodies = fleet.wait_phase(names, "running", timeout=scale.timeout_s)
    converged = time.monotonic() - started
    listing = _one_live_instance_each(chaos_operator, fleet, bodies)
    created = sim_created_by_vm(listing, instance_names_by_vm(bodies))
    report(
        f"sigkill: {scale.vms} VMs, {scale.kills} kills in {kills_done:.1f}s, all running after "
        f"{converged:.1f}s; phases seen at the kills {dict(phases_at_kill)}; "
        f"create_calls={listing['counts']['create_calls']}, instances created per VM "
        f"{sorted(Counter(created.values()).items())}; providers {_providers(bodies)}; "
        f"faults served {sim_stats(chaos_operator.tensordock)['faults_served']}"
    )
    assert op.running()

    deleting = time.monotonic()
    fleet.delete(names)
    fleet.wait_gone(names, timeout=scale.timeout_s)
    _no_live_instances(chaos_operator, bodies)
    report(f"sigkill: deleted all in {time.monotonic() - deleting:.1f}s")


class _RateLimitBursts:
    """429 windows: every `period` seconds, every API request for `length` seconds gets
    429 with Retry-After (the simulator's `rate_limit_rate` switched to 1, then back)."""

    def __init__(self, op: OperatorUnderTest, length: float, period: float) -> None:
        self._op = op
        self._length = length
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.bursts = 0

    def _set(self, rate: float) -> None:
        asyncio.run(self._op.tensordock.set_faults({"rate_limit_rate": rate}, merge=True))

    def _run(self) -> None:
        while not self._stop.wait(self._period - self._length):
            self._set(1.0)
            self.bursts += 1
            self._stop.wait(self._length)
            self._set(0.0)

    def __enter__(self) -> _RateLimitBursts:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_provider_faults_converge_without_crash_loop(
    chaos_operator: OperatorUnderTest, fleet: VMFleet
) -> None:
    """(b) 20% 5xx (some after the backend acted), 429 bursts with Retry-After, timeouts."""
    scale = chaos_scale()
    op = chaos_operator.process
    pid = op.pid
    faults = {
        "error_rate": 0.2,
        "timeout_rate": 0.03,
        "timeout_s": 8,  # longer than the operator's 5 s client timeout in the tests
        "retry_after_s": 1,
        # A gateway 500 after the create happened: retrying blindly would double the VM.
        "crash_after_create_rate": 0.2,
        "crash_mode": "500",
        "seed": SEED,
    }
    set_faults(chaos_operator.tensordock, faults)

    def alive() -> None:
        assert op.running(), f"the operator exited ({op.exit_code()})"
        assert op.pid == pid

    names = [f"fault-{i:02d}" for i in range(scale.vms)]
    started = time.monotonic()
    with _RateLimitBursts(chaos_operator, length=0.5, period=4.0) as bursts:
        fleet.apply(names, autoStopTimeout=3600)
        bodies = fleet.wait_phase(names, "running", timeout=scale.timeout_s, during=alive)
        to_running = time.monotonic() - started
        create_stats = sim_stats(chaos_operator.tensordock)
        _one_live_instance_each(chaos_operator, fleet, bodies)
        fleet.delete(names)
        fleet.wait_gone(names, timeout=scale.timeout_s)
        total = time.monotonic() - started
        stats = sim_stats(chaos_operator.tensordock)
    _no_live_instances(chaos_operator, bodies)
    alive()
    assert started_count(op) == 1, "the operator restarted"
    create_requests = api_requests(create_stats)
    requests = api_requests(stats)
    report(
        f"faults: {scale.vms} VMs running in {to_running:.1f}s, deleted after {total:.1f}s; "
        f"{bursts.bursts} 429 bursts; faults served {stats['faults_served']}; "
        f"providers chosen {_providers(bodies)}"
    )
    report(
        f"faults: simulator API requests {create_requests} to running "
        f"({create_requests / scale.vms:.1f}/VM), {requests} for the whole lifecycle "
        f"({requests / scale.vms:.1f}/VM); per route {stats['requests']}"
    )
    fell_back = {
        vm: _brief_status(body)["rejected"]
        for vm, body in bodies.items()
        if body["status"].get("provider") != "tensordock"
    }
    if fell_back:
        report(f"faults: VMs that fell back from TensorDock, and why: {fell_back}")
    tracebacks = log_matches(op, r"Traceback")
    report(f"faults: tracebacks in the operator log: {len(tracebacks)}")
    assert requests / scale.vms <= MAX_REQUESTS_PER_VM, "retries are not bounded"


def _mirror_docs(mirror: MirroredOperator, namespace: str) -> dict[str, dict[str, Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(
        mirror.mongo.uri, serverSelectionTimeoutMS=3000
    )
    try:
        docs = client[mirror.database][VM_COLLECTION].find({"namespace": namespace})
        return {str(doc["vm_id"]): doc for doc in docs}
    finally:
        client.close()


def _mirror_diff(
    docs: dict[str, dict[str, Any]],
    live: dict[str, dict[str, Any]],
    deleted_uids: dict[str, str],
) -> list[str]:
    """What differs between the mirror and the API server (empty: converged)."""
    problems: list[str] = []
    expected: dict[str, str] = {}
    for body in live.values():
        expected[body["metadata"]["uid"]] = body.get("status", {}).get("phase", "creating")
    for uid in deleted_uids.values():
        expected[uid] = "terminated"
    names = {body["metadata"]["uid"]: name for name, body in live.items()}
    names.update({uid: name for name, uid in deleted_uids.items()})
    for uid, phase in expected.items():
        got = docs.get(uid, {}).get("status", "<missing>")
        if got != phase:
            problems.append(f"{names[uid]}: mirror {got}, API server {phase}")
    for body in live.values():
        uid, status = body["metadata"]["uid"], body.get("status", {})
        stored = docs.get(uid, {}).get("provider_instance_id")
        if uid in docs and stored != status.get("providerInstanceId"):
            problems.append(f"{names[uid]}: mirror instance {stored}, API server {status}")
    extra = set(docs) - set(expected)
    if extra:
        problems.append(f"documents for unknown vm_ids: {sorted(extra)}")
    return problems


def test_mongodb_outage_under_load(
    mirrored_operator: MirroredOperator, fleet: VMFleet, namespace: str
) -> None:
    """(c) MongoDB down while VMs are created, changed and deleted; the mirror converges."""
    scale = chaos_scale()
    mirror = mirrored_operator
    op = mirror.op.process
    before = [f"pre-{i:02d}" for i in range(max(4, scale.vms // 2))]
    during = [f"out-{i:02d}" for i in range(max(3, scale.vms // 2))]
    halted, gone = before[:2], before[2:4]
    flash = ["flash-0"]  # created and deleted while MongoDB is away

    fleet.apply(before, autoStopTimeout=3600)
    bodies = fleet.wait_phase(before, "running", timeout=scale.timeout_s)
    _wait_mirror(mirror, fleet, namespace, {}, timeout=60, what="before the outage")

    mirror.mongo.stop()
    outage_started = time.monotonic()
    try:
        deleted_uids = {name: bodies[name]["metadata"]["uid"] for name in gone}
        fleet.apply(during, autoStopTimeout=3600)
        fleet.apply(flash, autoStopTimeout=3600)
        fleet.apply(halted, autoStopTimeout=3600, runStrategy="Halted")
        fleet.delete(gone)
        flash_bodies = fleet.wait_phase(flash, "running", timeout=scale.timeout_s)
        deleted_uids.update({n: flash_bodies[n]["metadata"]["uid"] for n in flash})
        fleet.delete(flash)
        fleet.wait_phase(during, "running", timeout=scale.timeout_s)
        fleet.wait_phase(halted, "stopped", timeout=scale.timeout_s)
        fleet.wait_gone(gone + flash, timeout=scale.timeout_s)
        k8s_done = time.monotonic() - outage_started
        time.sleep(max(0.0, scale.mongo_outage_s - k8s_done))
        assert op.running(), "the operator died while MongoDB was away"
    finally:
        outage = time.monotonic() - outage_started
        mirror.mongo.start()
    restarted = time.monotonic()
    waited = _wait_mirror(
        mirror, fleet, namespace, deleted_uids, timeout=max(60.0, scale.mongo_outage_s)
    )
    report(
        f"mongo outage: {outage:.1f}s down (API server side settled after {k8s_done:.1f}s); "
        f"mirror converged {time.monotonic() - restarted:.1f}s after the restart "
        f"({waited} polls); {len(fleet.bodies() or {})} live + {len(deleted_uids)} terminated"
    )
    assert op.running()
    assert started_count(op) == 1, "the operator restarted"


def _wait_mirror(
    mirror: MirroredOperator,
    fleet: VMFleet,
    namespace: str,
    deleted_uids: dict[str, str],
    timeout: float,
    what: str = "after the outage",
) -> int:
    deadline = time.monotonic() + timeout
    polls = 0
    problems: list[str] = []
    while time.monotonic() < deadline:
        polls += 1
        live = fleet.bodies() or {}
        problems = _mirror_diff(_mirror_docs(mirror, namespace), live, deleted_uids)
        if not problems:
            return polls
        time.sleep(0.5)
    pytest.fail(f"the mirror did not converge {what} in {timeout:.0f}s: {problems}", pytrace=False)


def test_kube_apiserver_restart_mid_run(
    chaos_operator: OperatorUnderTest, fleet: VMFleet, kube_stack: KubeStack
) -> None:
    """(d) kube-apiserver stopped and started on the same port while VMs provision."""
    scale = chaos_scale()
    op = chaos_operator.process
    pid = op.pid
    set_faults(chaos_operator.tensordock, {"latency_ms": 300, "jitter_ms": 300, "seed": SEED})
    names = [f"api-{i:02d}" for i in range(scale.vms)]
    started = time.monotonic()
    fleet.apply(names, autoStopTimeout=3600)
    # Stop it once provisioning has visibly begun (the first VM has a phase).
    fleet.wait_all(names[:1], lambda b: "phase" in b.get("status", {}), 60, "a first phase")
    time.sleep(0.5)
    phases = Counter(str(p) for p in fleet.phases().values())
    down_s = 3.0 if scale.name == "small" else 15.0
    back_after = restart_kube_apiserver(kube_stack, down_seconds=down_s)
    set_faults(chaos_operator.tensordock, {})
    # An outage longer than the renew deadline makes the leader step down: it exits with
    # EXIT_LOST_LEADERSHIP, as controller-runtime does, and the Deployment restarts it.
    # Do what the kubelet would; a shorter outage must leave the same process running.
    exit_code = op.wait_exit(HARD_EXIT_AFTER_LOSS_SECONDS + 5)
    assert exit_code in (None, EXIT_LOST_LEADERSHIP), f"the operator exited ({exit_code})"
    stepped_down = exit_code == EXIT_LOST_LEADERSHIP
    if stepped_down:
        op.restart()
    bodies = fleet.wait_phase(names, "running", timeout=scale.timeout_s, tolerate_outage=True)
    converged = time.monotonic() - started
    assert op.running(), f"the operator exited ({op.exit_code()})"
    if not stepped_down:
        assert op.pid == pid
    assert started_count(op) == (2 if stepped_down else 1)
    _one_live_instance_each(chaos_operator, fleet, bodies)
    report(
        f"apiserver restart: phases at the stop {dict(phases)}; down {down_s:.0f}s, ready "
        f"{back_after:.1f}s after start; leader stepped down and restarted: {stepped_down}; "
        f"all {scale.vms} running after {converged:.1f}s"
    )
    fleet.delete(names)
    fleet.wait_gone(names, timeout=scale.timeout_s)
    _no_live_instances(chaos_operator, bodies)
