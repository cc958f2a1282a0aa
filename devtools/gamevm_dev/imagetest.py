"""`make image-test`: the built operator image, run the way the Deployment runs it, against
the local stack's API server; it must serve /healthz and take a GameVM to `running`.

There is no container engine daemon here, so the runner is built from the kernel's own
parts, as a runtime would: the image's root filesystem (`buildah mount`) mounted
read-only in a private mount and PID namespace (`unshare`), a tmpfs on /tmp (the
Deployment's emptyDir), the ServiceAccount token where the kubelet mounts it, then
`chroot --userspec=65532:65532` to the image's entrypoint with the image's environment.
The operator authenticates with in-cluster config as the install's ServiceAccount, with
the install's RBAC (manifests/), as in a cluster. Needs root (mount, chroot), buildah
and util-linux's unshare.

    python -m gamevm_dev.imagetest --image gamevm-operator:0.1.0
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from gamevm_dev.devstack import binaries
from gamevm_dev.devstack.extras import TENSORDOCK_DELAY_SCALE_ENV
from gamevm_dev.devstack.processes import http_ok, log_tail
from gamevm_dev.devstack.stack import Stack, StackError
from gamevm_dev.devstack.steps import default_steps
from gamevm_dev.simulators.ports import free_port

REPO_ROOT = binaries.REPO_ROOT
NAMESPACE = "gamevm-system"
SERVICE_ACCOUNT = "gamevm-operator"
PLAYERS = "image-test"
BUILDAH = ["buildah", "--storage-driver", "vfs"]
STACK_STEPS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "crds",
    "mongo",
    "tensordock-simulator",
    "simulator-credentials",
)
"""The local stack without its own operator and samples: the image's operator does the work."""
RBAC_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role"}
RBAC_KINDS |= {"RoleBinding"}
TOKEN_DIR = "run/secrets/kubernetes.io/serviceaccount"  # noqa: S105 (a path, no secret)
"""Where the kubelet puts the token (/var/run is a link to /run in Debian)."""


def log(line: str) -> None:
    print(f"[image-test] {line}", file=sys.stderr, flush=True)


def run(command: Sequence[str]) -> str:
    result = subprocess.run(list(command), capture_output=True, text=True, check=False, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"`{shlex.join(command)}` failed: {result.stderr.strip()}")
    return result.stdout


def image_config(image: str) -> dict[str, Any]:
    """The OCI config of the image: User, Env, Entrypoint, Cmd, WorkingDir."""
    inspected = json.loads(run([*BUILDAH, "inspect", "--type", "image", image]))
    config: dict[str, Any] = inspected["OCIv1"]["config"]
    return config


def install_rbac(stack: Stack) -> None:
    """The install's Namespace, ServiceAccount and RBAC, applied for real."""
    rendered = stack.kubectl("kustomize", str(REPO_ROOT / "manifests")).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] in RBAC_KINDS]
    stack.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(docs))


def write_service_account_files(stack: Stack, folder: Path) -> None:
    """token, ca.crt and namespace, as the kubelet projects them."""
    folder.mkdir(parents=True, exist_ok=True)
    token = stack.kubectl(
        "create", "token", SERVICE_ACCOUNT, f"--namespace={NAMESPACE}", "--duration=1h"
    ).stdout.strip()
    (folder / "token").write_text(token)
    kubeconfig = yaml.safe_load(
        stack.kubectl("config", "view", "--raw", "--flatten", "--minify").stdout
    )
    ca = kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
    (folder / "ca.crt").write_bytes(_b64decode(ca))
    (folder / "namespace").write_text(NAMESPACE)
    for path in folder.iterdir():
        path.chmod(0o644)
    folder.chmod(0o755)  # mkdtemp makes it 0700: uid 65532 could not reach the token


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text)


def runner_script(
    rootfs: Path,
    secrets: Path,
    env: dict[str, str],
    argv: list[str],
    volumes: dict[str, Path] | None = None,
) -> str:
    """The shell run inside `unshare --mount --pid --fork`: a read-only root, tmpfs /tmp and
    /run, the token mounted like the kubelet's, `volumes` (path in the image: host folder)
    bind-mounted writable like PersistentVolumeClaims, then chroot to the image's user."""
    r = shlex.quote(str(rootfs))
    binds = [
        f"mount --bind {shlex.quote(str(host))} {r}/{shlex.quote(inside.lstrip('/'))}"
        for inside, host in (volumes or {}).items()
    ]
    environment = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(env.items()))
    command = " ".join(shlex.quote(a) for a in argv)
    return "\n".join(
        [
            "set -eu",
            f"mount --bind {r} {r}",
            f"mount --rbind /dev {r}/dev",
            f"mount -t proc proc {r}/proc",
            f"mount -t tmpfs -o size=64m,mode=1777 tmpfs {r}/tmp",  # noqa: S108 (the image's /tmp)
            f"mount -t tmpfs -o size=1m,mode=0755 tmpfs {r}/run",
            f"mkdir -p {r}/{TOKEN_DIR}",
            f"mount --bind -o ro {shlex.quote(str(secrets))} {r}/{TOKEN_DIR}",
            *binds,
            f"mount -o remount,bind,ro {r}",
            f"exec chroot --userspec=65532:65532 {r} /usr/bin/env -i {environment} {command}",
        ]
    )


def wait(what: str, check: Callable[[], bool], timeout: float, alive: Callable[[], bool]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not alive():
            raise RuntimeError(f"the operator exited while waiting for {what}")
        if check():
            return time.monotonic() - started
        time.sleep(1.0)
    raise RuntimeError(f"{what}: not within {timeout:.0f}s")


def gamevm_manifests() -> str:
    """The nes EmulatorConfig of the samples and a GameVM for it (TensorDock, retro)."""
    config = yaml.safe_load((REPO_ROOT / "manifests/samples/emulatorconfig-nes.yaml").read_text())
    gamevm = yaml.safe_load((REPO_ROOT / "manifests/samples/gamevm-nes-retro.yaml").read_text())
    gamevm["metadata"] = {"name": "from-the-image", "namespace": PLAYERS}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLAYERS}}
    return yaml.safe_dump_all([namespace, config, gamevm])


def phase(stack: Stack) -> str:
    result = stack.kubectl(
        "get", "gamevm", "from-the-image", f"--namespace={PLAYERS}", "-o=json", check=False
    )
    if result.returncode != 0:
        return ""
    return str((json.loads(result.stdout).get("status") or {}).get("phase") or "")


def process_facts(pid: int) -> dict[str, str]:
    """What the kernel says about the running operator: its uid and its root mount."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = next(line.split()[1:] for line in status if line.startswith("Uid:"))
    root = Path(f"/proc/{pid}/root").resolve()
    mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    root_mount = next((m for m in mounts if m.split()[4] == "/"), "")
    return {
        "uid (real, effective)": " ".join(uid[:2]),
        "root": str(root),
        "root mount options": root_mount.split()[5] if root_mount else "?",
    }


def find_operator_pid(unshare_pid: int) -> int | None:
    """The chrooted operator: the child of the `unshare --fork` process."""
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children")
    if not children.exists():
        return None
    pids = children.read_text().split()
    return int(pids[0]) if pids else None


def container_env(config: dict[str, Any], stack: Stack, port: int) -> dict[str, str]:
    """The image's own environment plus what the Deployment and the kubelet set."""
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    api_port = free_port()
    env.update(
        {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(stack.state.ports["kube-apiserver"]),
            "GAMEVM_NAMESPACE": NAMESPACE,
            "GAMEVM_HTTP_HOST": "127.0.0.1",
            "GAMEVM_HTTP_PORT": str(port),
            "GAMEVM_API_HOST": "127.0.0.1",
            "GAMEVM_API_PORT": str(api_port),
            # The simulated VM sends its configuration report here, as a real VM would to
            # the install's public URL; without it the VM stays configuring.
            "GAMEVM_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
            # One operator process here: no Lease to elect on (tests/e2e cover the election).
            "GAMEVM_LEADER_ELECTION": "false",
            "GAMEVM_LOG_FORMAT": "json",
            # The simulated VMs answer like Wolf on 127.0.0.1 (refused in production).
            "GAMEVM_WOLF_PROBE_ALLOW_LOOPBACK": "true",
            "GAMEVM_TENSORDOCK_API_URL": stack.state.exports["GAMEVM_TENSORDOCK_API_URL"],
            "GAMEVM_MONGODB_URI": stack.state.exports.get("GAMEVM_MONGODB_URI", ""),
        }
    )
    return env


class Container:
    """The image's root filesystem, mounted by buildah, and the operator process run on it."""

    def __init__(self, image: str, log_path: Path) -> None:
        self.image = image
        self.log_path = log_path
        self.config = image_config(image)
        self.name = ""
        self.process: subprocess.Popen[bytes] | None = None

    def mount(self) -> Path:
        self.name = run([*BUILDAH, "from", "--pull-never", self.image]).strip()
        return Path(run([*BUILDAH, "mount", self.name]).strip())

    def start(self, rootfs: Path, secrets: Path, env: dict[str, str]) -> None:
        argv = [*(self.config.get("Entrypoint") or []), *(self.config.get("Cmd") or [])]
        script = runner_script(rootfs, secrets, env, argv)
        unshare = ["unshare", "--mount", "--pid", "--fork", "--propagation", "private"]
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [*unshare, "sh", "-c", script],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self.name:
            subprocess.run([*BUILDAH, "umount", self.name], capture_output=True, check=False)
            subprocess.run([*BUILDAH, "rm", self.name], capture_output=True, check=False)


DEV_NAMES = ("gamevm_dev", "gamevm-dev", "cloudypad-sim", "simulators", "devstack", "bench")


def check_only_the_operator_ships(rootfs: Path) -> None:
    """The image's virtualenv holds the operator and its dependencies, nothing of devtools/
    or bench/ (the wheel test checks the wheel; this checks what the build really made)."""
    venv = rootfs / "opt" / "venv"
    found = [
        str(path.relative_to(rootfs))
        for path in venv.rglob("*")
        if path.name in DEV_NAMES or path.name.startswith("gamevm_operator_dev")
    ]
    if found:
        raise RuntimeError(f"development code in the image: {found[:10]}")
    scripts = sorted(p.name for p in (venv / "bin").iterdir() if "gamevm" in p.name)
    log(f"only the operator ships: /opt/venv/bin has {scripts}, no development module")


def check_image(args: argparse.Namespace, stack: Stack, container: Container) -> None:
    """Start the image's operator on the stack; /healthz, then a GameVM to running."""
    config = container.config
    log(
        f"image {args.image}: user {config.get('User')}, entrypoint "
        f"{config.get('Entrypoint')}, workdir {config.get('WorkingDir')}"
    )
    rootfs = container.mount()
    check_only_the_operator_ships(rootfs)
    # The simulated VM configures itself in 12 s instead of a real machine's 4 minutes.
    os.environ.setdefault(TENSORDOCK_DELAY_SCALE_ENV, "0.05")
    stack.up(only=STACK_STEPS)
    install_rbac(stack)
    secrets = Path(tempfile.mkdtemp(prefix="sa-", dir=stack.root.parent))
    write_service_account_files(stack, secrets)
    port = free_port()
    log("starting the image's entrypoint as 65532:65532 on a read-only root")
    container.start(rootfs, secrets, container_env(config, stack, port))
    healthz = f"http://127.0.0.1:{port}/healthz"
    took = wait("/healthz", lambda: http_ok(healthz), args.timeout, container.alive)
    log(f"{healthz} answered 200 after {took:.1f}s")
    operator = find_operator_pid(container.process.pid) if container.process else None
    if operator is not None:
        for key, value in process_facts(operator).items():
            log(f"operator pid {operator}: {key} = {value}")
    stack.kubectl("apply", "-f", "-", input_text=gamevm_manifests())
    took = wait(
        "GameVM from-the-image to reach running",
        lambda: phase(stack) == "running",
        args.timeout,
        container.alive,
    )
    log(f"GameVM {PLAYERS}/from-the-image is running after {took:.1f}s")
    with urllib.request.urlopen(healthz, timeout=5) as response:
        log(f"healthz body: {response.read().decode()[:200]}")
    if args.cloudypad:
        check_cloudypad(container, rootfs, secrets, stack.root.parent)


def run_once(
    rootfs: Path, secrets: Path, env: dict[str, str], argv: list[str], volumes: dict[str, Path]
) -> subprocess.CompletedProcess[str]:
    """One command in a fresh container on the image (a new pod on the same volumes)."""
    script = runner_script(rootfs, secrets, env, argv, volumes)
    return subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def check_cloudypad(container: Container, rootfs: Path, secrets: Path, state: Path) -> None:
    """The `cloudypad` target: the CLI runs as 65532 on the read-only root with its state
    on a volume at GAMEVM_CLOUDYPAD_HOME, and the state outlives the container."""
    env = dict(item.split("=", 1) for item in container.config.get("Env") or [])
    home = env["GAMEVM_CLOUDYPAD_HOME"]
    volume = state / "cloudypad-volume"
    volume.mkdir(exist_ok=True)
    os.chown(volume, 65532, 65532)  # what the pod's fsGroup does for the claim
    env |= {"CLOUDYPAD_HOME": home, "CLOUDYPAD_ANALYTICS_DISABLE": "true"}
    env["CLOUDYPAD_CONTAINER_NO_TTY"] = "1"
    name = "image-test-proof"
    # CloudyPad's offline `dummy` provider, every prompt answered by a flag.
    create = ["create", "dummy", "--name", name, "--yes", "--overwrite-existing"]
    create += ["--skip-pairing", "--streaming-server", "wolf", "--autostop", "false"]
    steps = [
        ["cloudypad", "--version"],
        ["cloudypad", *create, "--instance-type", "dummy-1"],
        ["cloudypad", "get", name],  # a new container: the state came from the volume
        ["cloudypad", "destroy", name, "--yes"],
    ]
    for argv in steps:
        started = time.monotonic()
        result = run_once(rootfs, secrets, env, argv, {home: volume})
        took = time.monotonic() - started
        out = (result.stdout + result.stderr).strip().splitlines()
        log(f"`{shlex.join(argv)}` exit {result.returncode} in {took:.1f}s: {out[-1:]}")
        if result.returncode != 0:
            raise RuntimeError(f"`{shlex.join(argv)}` failed:\n" + "\n".join(out[-15:]))
        if argv[1] == "create":
            # 0.45.1 exits 0 even when a prompt fails: the state file is the proof.
            state_file = volume / "instances" / name / "state.yml"
            if not state_file.is_file():
                raise RuntimeError(f"create left no {state_file}:\n" + "\n".join(out[-15:]))
            log(f"state written to the volume: {state_file.relative_to(volume)}")
    files = sorted(str(p.relative_to(volume)) for p in volume.rglob("*") if p.is_file())
    log(f"state on the volume after destroy: {files[:8]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gamevm_dev.imagetest", description=__doc__)
    parser.add_argument("--image", default="gamevm-operator:0.1.0")
    parser.add_argument("--state-dir", default=str(REPO_ROOT / "build" / "image-test"))
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--keep-stack", action="store_true", help="leave the local stack up")
    parser.add_argument(
        "--cloudypad", action="store_true", help="also run the CloudyPad CLI (target cloudypad)"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        log("needs root: mount, unshare and chroot build the container by hand")
        return 1
    started = time.monotonic()
    state = Path(args.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    stack = Stack(state / "stack", steps=default_steps(with_operator=False))
    # A fresh cluster each run: a GameVM left by an earlier run would answer for this one.
    stack.down()
    shutil.rmtree(state / "stack", ignore_errors=True)
    container: Container | None = None
    try:
        container = Container(args.image, state / "operator.log")
        check_image(args, stack, container)
    except (RuntimeError, StackError, OSError, subprocess.SubprocessError) as exc:
        log(f"FAILED: {exc}")
        if (state / "operator.log").exists():
            log("operator log (tail):\n" + log_tail(state / "operator.log", 30))
        return 1
    finally:
        if container is not None:
            container.stop()
        if not args.keep_stack:
            stack.down()
    log(f"image test passed in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
