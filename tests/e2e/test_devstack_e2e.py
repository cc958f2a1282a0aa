"""The local stack itself: the control plane the fixtures start (RBAC, TokenRequest,
garbage collection, namespace deletion), the `gamevm-dev` command, the
process helpers and the `operator_process` fixture."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gamevm_dev.devstack.binaries import KUBE_VERSION
from gamevm_dev.devstack.processes import ManagedProcess, pid_alive, stop_pid
from gamevm_dev.simulators.ports import free_port
from tests.fixtures.stack import Kubectl, KubeStack

pytestmark = pytest.mark.e2e

GAMEVM_DEV = [sys.executable, "-m", "gamevm_dev.devstack.cli"]


def _accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


# The control plane ---------------------------------------------------------------


def test_server_runs_the_pinned_release(kubectl: Kubectl) -> None:
    version = json.loads(kubectl("version", "-o=json").stdout)
    assert version["serverVersion"]["gitVersion"] == KUBE_VERSION


def test_server_listens_on_loopback_only(kube_stack: KubeStack) -> None:
    assert kube_stack.server_url.startswith("https://127.0.0.1:")
    for name, port in kube_stack.stack.state.ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent; just finds our outbound address
            outbound = probe.getsockname()[0]
        if outbound != "127.0.0.1":
            assert not _accepts(port, outbound), f"{name} answers on {outbound}:{port}"


def test_admin_is_system_masters(kubectl: Kubectl) -> None:
    whoami = json.loads(kubectl("auth", "whoami", "-o=json").stdout)
    assert "system:masters" in whoami["status"]["userInfo"]["groups"]


def test_token_request_and_rbac(
    kubectl: Kubectl, namespace: str, kube_stack: KubeStack, tmp_path: Path
) -> None:
    kubectl("create", "serviceaccount", "reader", namespace=namespace)
    token = kubectl(
        "create", "token", "reader", "--duration=10m", namespace=namespace
    ).stdout.strip()
    assert token.count(".") == 2, "expected a JWT"
    # A kubeconfig with only the CA and the token: no admin client cert to fall back on.
    admin = yaml.safe_load(kube_stack.kubeconfig.read_text())
    reader_config = tmp_path / "reader.kubeconfig"
    reader_config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": admin["clusters"],
                "users": [{"name": "reader", "user": {"token": token}}],
                "contexts": [
                    {"name": "reader", "context": {"cluster": "gamevm-dev", "user": "reader"}}
                ],
                "current-context": "reader",
            }
        )
    )

    def run_as_reader(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(kube_stack.kubectl_path), f"--kubeconfig={reader_config}", *args],
            capture_output=True,
            text=True,
            check=False,
        )

    whoami = run_as_reader("auth", "whoami", "-o=jsonpath={.status.userInfo.username}")
    assert whoami.stdout == f"system:serviceaccount:{namespace}:reader", whoami.stderr

    denied = run_as_reader("get", "secrets", f"--namespace={namespace}")
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()

    kubectl(
        "create", "rolebinding", "reader-view", "--clusterrole=view",
        f"--serviceaccount={namespace}:reader", namespace=namespace,
    )  # fmt: skip
    _wait(
        lambda: run_as_reader("get", "configmaps", f"--namespace={namespace}").returncode == 0,
        10,
        "the RoleBinding to take effect",
    )


def test_default_service_account_appears(kubectl: Kubectl, namespace: str) -> None:
    _wait(
        lambda: (
            kubectl("get", "serviceaccount", "default", namespace=namespace, check=False).returncode
            == 0
        ),
        20,
        "the serviceaccount controller to create `default`",
    )


def test_garbage_collector_deletes_owned_secret(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "configmap", "owner", namespace=namespace)
    uid = kubectl(
        "get", "configmap", "owner", "-o=jsonpath={.metadata.uid}", namespace=namespace
    ).stdout
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "owned",
            "namespace": namespace,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
            ],
        },
        "stringData": {"k": "v"},
    }
    kubectl("apply", "-f", "-", input=json.dumps(secret))
    kubectl("delete", "configmap", "owner", namespace=namespace)
    _wait(
        lambda: kubectl("get", "secret", "owned", namespace=namespace, check=False).returncode != 0,
        30,
        "the garbage collector to delete the owned Secret",
    )


def test_namespace_deletion_completes(kubectl: Kubectl) -> None:
    name = f"t-delete-{os.getpid()}"
    kubectl("create", "namespace", name)
    kubectl("create", "configmap", "x", namespace=name)
    kubectl("delete", "namespace", name, "--timeout=60s", timeout=90)
    assert kubectl("get", "namespace", name, check=False).returncode != 0


def test_api_client_factory(kube_stack: KubeStack, namespace: str) -> None:
    from kubernetes import client

    with kube_stack.api_client() as api:
        names = [
            ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items if ns.metadata
        ]
    assert namespace in names


# `gamevm-dev` -------------------------------------------------------------


@pytest.fixture
def dev_state(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "dev"
    yield state
    subprocess.run([*GAMEVM_DEV, "down", "--state-dir", str(state)], check=False)


def _dev(
    action: str, state: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GAMEVM_DEV, action, "--state-dir", str(state), "--no-operator"],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
        check=False,
    )


def _exports(stdout: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value.strip("'")
    return env


def test_dev_up_status_down(dev_state: Path, kube_stack: KubeStack) -> None:
    started = time.monotonic()
    up = _dev("up", dev_state)
    first_up = time.monotonic() - started
    assert up.returncode == 0, up.stderr
    exports = _exports(up.stdout)
    assert exports["KUBECONFIG"] == str(dev_state.resolve() / "kubeconfig")
    # stdout is only shell syntax: `eval "$(gamevm-dev up)"` works.
    for line in up.stdout.splitlines():
        assert line.startswith(("export ", "#")), line
    for step in ("etcd", "kube-apiserver", "kube-controller-manager", "crds"):
        assert f"[dev] {step}: " in up.stderr
    # Progress: how many steps, time elapsed and what remains after each one.
    assert re.search(r"\[dev\] \d+ steps: etcd, kube-apiserver", up.stderr), up.stderr
    assert re.search(r"\[dev\] etcd: .* \(1/\d+, \d+s elapsed; next: kube-apiserver", up.stderr)
    assert re.search(r"\(\d+/\d+, \d+s elapsed; done\)", up.stderr), up.stderr

    gvms = subprocess.run(
        [str(kube_stack.kubectl_path), "get", "gamevms", "-A"],
        env={**os.environ, "KUBECONFIG": exports["KUBECONFIG"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert gvms.returncode == 0, gvms.stderr

    again = _dev("up", dev_state)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr
    assert _exports(again.stdout)["KUBECONFIG"] == exports["KUBECONFIG"]

    status = _dev("status", dev_state)
    assert status.returncode == 0, status.stderr
    assert "kube-apiserver: running" in status.stderr
    # A crashed process: status says so, and `up` restarts just that one.
    kcm_pidfile = dev_state / "pids" / "kube-controller-manager.pid"
    os.kill(int(kcm_pidfile.read_text()), signal.SIGKILL)
    _wait(lambda: _dev("status", dev_state).returncode == 1, 10, "status to notice the crash")
    assert "kube-controller-manager: NOT running" in _dev("status", dev_state).stderr
    healed = _dev("up", dev_state)
    assert healed.returncode == 0, healed.stderr
    assert "kube-controller-manager: started" in healed.stderr
    assert "kube-apiserver: already running" in healed.stderr

    pids = [int(p.read_text()) for p in (dev_state / "pids").glob("*.pid")]
    assert len(pids) >= 3

    down = _dev("down", dev_state)
    assert down.returncode == 0, down.stderr
    assert all(not pid_alive(pid) for pid in pids)
    assert _dev("status", dev_state).returncode == 1
    print(f"dev up (first) {first_up:.1f}s")


def test_dev_up_reports_a_taken_port(dev_state: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        up = _dev("up", dev_state, {"GAMEVM_DEV_ETCD_PORT": str(port)})
    assert up.returncode == 1
    assert f"port {port}" in up.stderr
    assert "GAMEVM_DEV_ETCD_PORT" in up.stderr


def test_dev_up_reports_a_missing_binary(dev_state: Path) -> None:
    up = _dev("up", dev_state, {"GAMEVM_ETCD": "/nonexistent/etcd"})
    assert up.returncode == 1
    assert "GAMEVM_ETCD=/nonexistent/etcd" in up.stderr


# Process helpers ---------------------------------------------------------------------


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    stubborn = ManagedProcess(
        name="stubborn",
        command=[
            sys.executable,
            "-c",
            "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        log_path=tmp_path / "stubborn.log",
        pid_path=tmp_path / "stubborn.pid",
    )
    pid = stubborn.start()
    _wait(lambda: "ready" in stubborn.log_path.read_text(), 10, "the child to ignore SIGTERM")
    started = time.monotonic()
    assert stop_pid(pid, timeout=0.5)
    assert time.monotonic() - started < 5
    assert not pid_alive(pid)
    stubborn.stop()
    assert not stubborn.pid_path.exists()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_operator_process_fixture(operator_process: object, kube_stack: KubeStack) -> None:
    # The fixture is generic: run a stand-in that prints its settings and serves HTTP.
    script = (
        "import os, http.server, sys\n"
        "print('kubeconfig', os.environ['KUBECONFIG'], 'extra', os.environ['EXTRA'], flush=True)\n"
        "http.server.HTTPServer(('127.0.0.1', int(os.environ['GAMEVM_HTTP_PORT'])),"
        " http.server.SimpleHTTPRequestHandler).serve_forever()\n"
    )
    assert callable(operator_process)
    proc = operator_process(env={"EXTRA": "yes"}, command=[sys.executable, "-c", script])
    proc.wait_for_log(r"extra yes")
    assert str(kube_stack.kubeconfig) in proc.log_text()
    first_pid = proc.pid
    proc.kill(signal.SIGKILL)
    assert not proc.running()
    proc.restart()
    assert proc.pid != first_pid
    proc.wait_for_log(r"extra yes")  # only the new run's log counts
    assert proc.log_text().count("extra yes") == 2
    assert proc.log_text(current_run=True).count("extra yes") == 1
    proc.wait_http_port(10)
    assert _accepts(proc.http_port)
