"""Control-plane steps: etcd, kube-apiserver, kube-controller-manager, CRDs."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import ClassVar

import yaml

from gamevm_dev.devstack import binaries
from gamevm_dev.devstack.binaries import REPO_ROOT
from gamevm_dev.devstack.certs import CertPaths, ensure_certs
from gamevm_dev.devstack.processes import ManagedProcess, http_ok, wait_for_http
from gamevm_dev.devstack.stack import ProcessStep, Stack, Step, StepPendingError

PROFILING_ENV = "GAMEVM_DEV_APISERVER_PROFILING"
"""Set to 1: kube-apiserver serves /debug/pprof (for profiling the bench)."""

SERVICE_CIDR = "10.96.0.0/24"
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "clusterrole-aggregation-controller",
)
"""Controllers the dev cluster needs: GC of owner-referenced objects (the per-VM
Secrets), namespace deletion (test namespaces), a `default` ServiceAccount per
namespace (for `kubectl create token`), legacy token Secrets, and aggregation of
labelled ClusterRoles into admin/edit/view. No pods run here, so nothing else."""


def write_kubeconfig(path: Path, server: str, certs: CertPaths, user: str) -> None:
    """A kubeconfig for `user`'s client certificate, with the PEMs embedded (portable)."""
    import base64

    def b64(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "gamevm-dev",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": b64(certs.ca_cert),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(certs.client_cert(user)),
                    "client-key-data": b64(certs.client_key(user)),
                },
            }
        ],
        "contexts": [{"name": "gamevm-dev", "context": {"cluster": "gamevm-dev", "user": user}}],
        "current-context": "gamevm-dev",
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def admin_ssl_context(certs: CertPaths) -> ssl.SSLContext:
    """TLS context trusting the dev CA and presenting the admin client cert."""
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    context.load_cert_chain(str(certs.client_cert("admin")), str(certs.client_key("admin")))
    return context


def _insecure_context() -> ssl.SSLContext:
    # The controller manager serves /healthz with a self-signed cert it makes itself;
    # only liveness is checked, on loopback.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class EtcdStep(ProcessStep):
    """etcd on 127.0.0.1 (plain HTTP, loopback only, like envtest)."""

    name = "etcd"
    required_binaries = (binaries.ETCD,)

    def executable(self, stack: Stack) -> str:
        return str(stack.known_binary(binaries.ETCD))

    def command(self, stack: Stack, port: int) -> list[str]:
        peer = stack.state.port("etcd-peer", running=False)
        client_url = f"http://127.0.0.1:{port}"
        peer_url = f"http://127.0.0.1:{peer}"
        return [
            str(stack.binary(binaries.ETCD)),
            "--name=gamevm-dev",
            f"--data-dir={stack.root / 'etcd-data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=gamevm-dev={peer_url}",
            "--logger=zap",
            "--log-level=warn",
        ]

    def healthy(self, stack: Stack, port: int) -> bool:
        return http_ok(f"http://127.0.0.1:{port}/health")

    def wait_healthy(self, stack: Stack, process: ManagedProcess, port: int) -> None:
        wait_for_http(f"http://127.0.0.1:{port}/health", 30, alive=process.alive)


class ApiServerStep(ProcessStep):
    """kube-apiserver with RBAC, client-cert auth and service-account token signing."""

    name = "kube-apiserver"
    required_binaries = (binaries.KUBE_APISERVER, binaries.KUBECTL)
    startup_timeout = 90.0

    def executable(self, stack: Stack) -> str:
        return str(stack.known_binary(binaries.KUBE_APISERVER))

    def prepare(self, stack: Stack, port: int) -> None:
        certs = ensure_certs(stack.state.certs)
        write_kubeconfig(stack.kubeconfig, f"https://127.0.0.1:{port}", certs, "admin")

    def command(self, stack: Stack, port: int) -> list[str]:
        certs = CertPaths(stack.state.certs)
        etcd_port = stack.state.ports["etcd"]
        return [
            str(stack.binary(binaries.KUBE_APISERVER)),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={stack.state.certs}",
            f"--tls-cert-file={certs.serving_cert}",
            f"--tls-private-key-file={certs.serving_key}",
            f"--client-ca-file={certs.ca_cert}",
            "--authorization-mode=RBAC",
            # A fixed issuer: tokens stay valid when a restart picks another port.
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={certs.sa_pub}",
            f"--service-account-signing-key-file={certs.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # Off unless asked: the bench's CPU profile of the API server
            # (bench/README.md, "Where the API server's time goes").
            f"--profiling={'true' if os.environ.get(PROFILING_ENV) == '1' else 'false'}",
            "--v=0",
        ]

    def healthy(self, stack: Stack, port: int) -> bool:
        certs = CertPaths(stack.state.certs)
        if not certs.ca_cert.exists():
            return False
        return http_ok(f"https://127.0.0.1:{port}/readyz", admin_ssl_context(certs))

    def wait_healthy(self, stack: Stack, process: ManagedProcess, port: int) -> None:
        context = admin_ssl_context(CertPaths(stack.state.certs))
        wait_for_http(
            f"https://127.0.0.1:{port}/readyz",
            self.startup_timeout,
            context=context,
            alive=process.alive,
        )

    def after(self, stack: Stack, port: int) -> None:
        if not stack.kubeconfig.exists():
            self.prepare(stack, port)
        stack.state.exports["KUBECONFIG"] = str(stack.kubeconfig)


class ControllerManagerStep(ProcessStep):
    """kube-controller-manager running only the controllers in CONTROLLERS."""

    name = "kube-controller-manager"
    required_binaries = (binaries.KUBE_CONTROLLER_MANAGER,)

    def executable(self, stack: Stack) -> str:
        return str(stack.known_binary(binaries.KUBE_CONTROLLER_MANAGER))

    def _kubeconfig(self, stack: Stack) -> Path:
        return stack.root / "kube-controller-manager.kubeconfig"

    def prepare(self, stack: Stack, port: int) -> None:
        certs = ensure_certs(stack.state.certs)
        write_kubeconfig(
            self._kubeconfig(stack), stack.server_url, certs, "kube-controller-manager"
        )

    def command(self, stack: Stack, port: int) -> list[str]:
        certs = CertPaths(stack.state.certs)
        return [
            str(stack.binary(binaries.KUBE_CONTROLLER_MANAGER)),
            f"--kubeconfig={self._kubeconfig(stack)}",
            f"--controllers={','.join(CONTROLLERS)}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={stack.root / 'kube-controller-manager-certs'}",
            f"--service-account-private-key-file={certs.sa_key}",
            f"--root-ca-file={certs.ca_cert}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            "--profiling=false",
            "--v=0",
        ]

    def healthy(self, stack: Stack, port: int) -> bool:
        # A controller manager still pointing at an earlier API server port is stale.
        try:
            config = yaml.safe_load(self._kubeconfig(stack).read_text())
            server = config["clusters"][0]["cluster"]["server"]
        except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
            return False
        if server != stack.server_url:
            return False
        return http_ok(f"https://127.0.0.1:{port}/healthz", _insecure_context())

    def wait_healthy(self, stack: Stack, process: ManagedProcess, port: int) -> None:
        wait_for_http(
            f"https://127.0.0.1:{port}/healthz",
            60,
            context=_insecure_context(),
            alive=process.alive,
        )


def crd_names(folder: Path) -> list[str]:
    """metadata.name of every CustomResourceDefinition in folder/*.yaml."""
    names: list[str] = []
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                names.append(str(doc["metadata"]["name"]))
    return names


class CrdStep(Step):
    """`kubectl apply` of crds/ (server-side: big schemas overflow the client-side
    last-applied annotation), then wait until each CRD is Established."""

    name = "crds"
    folder: ClassVar[Path] = REPO_ROOT / "crds"

    def up(self, stack: Stack) -> str:
        names = crd_names(self.folder)
        if not names:
            raise StepPendingError(f"no CustomResourceDefinition in {self.folder} yet")
        stack.kubectl(
            "apply", "--server-side", "--force-conflicts", "--field-manager=gamevm-dev",
            "-f", str(self.folder),
        )  # fmt: skip
        stack.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            *(f"customresourcedefinition/{name}" for name in names),
        )  # fmt: skip
        return f"established: {', '.join(names)}"
