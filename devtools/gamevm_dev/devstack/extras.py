"""Steps after the control plane: the Mongo-compatible server, the provider
simulators, the operator and the sample manifests.

Each one checks that its module has landed and otherwise reports "pending", so
the stack is usable while the other areas are still being written.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import secrets
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import ClassVar

from gamevm_dev.devstack.binaries import REPO_ROOT
from gamevm_dev.devstack.processes import ManagedProcess, wait_for_port
from gamevm_dev.devstack.stack import ProcessStep, Stack, StackError, Step, StepPendingError
from gamevm_dev.simulators.ports import port_open

OPERATOR_NAMESPACE = "gamevm-system"


def _module_or_pending(name: str) -> ModuleType:
    if importlib.util.find_spec(name) is None:
        raise StepPendingError(f"module {name} has not landed yet")
    return importlib.import_module(name)


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def venv_script(name: str) -> Path:
    """A console script installed next to the running interpreter."""
    return Path(sys.executable).parent / name


class MongoStep(ProcessStep):
    """The MongoDB-compatible server from gamevm_dev.devstack.mongo (owned by the Mongo area)."""

    name = "mongo"

    def _module(self) -> ModuleType:
        return _module_or_pending("gamevm_dev.devstack.mongo")

    def executable(self, stack: Stack) -> str:
        # Stop/status must not build anything: the recorded command line names the
        # binary; fall back to a name that matches nothing when the module is absent.
        if not _has_module("gamevm_dev.devstack.mongo"):
            return "mongo-server"
        cached = stack.state.exports.get("GAMEVM_DEV_MONGO_BINARY")
        return cached or "mongo-server"

    def command(self, stack: Stack, port: int) -> list[str]:
        module = self._module()
        binary: Path = module.mongo_binary()
        stack.state.exports["GAMEVM_DEV_MONGO_BINARY"] = str(binary)
        data_dir = stack.root / "mongo-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        command: list[str] = module.mongo_command(binary, data_dir, port)
        return command

    def up(self, stack: Stack) -> str:
        self._module()  # pending before anything else when the module is missing
        return super().up(stack)

    def healthy(self, stack: Stack, port: int) -> bool:
        return port_open(port)

    def wait_healthy(self, stack: Stack, process: ManagedProcess, port: int) -> None:
        wait_for_port(port, 60, alive=process.alive)
        # Listening is not serving: wait for `ping` when the module offers it.
        ping = getattr(self._module(), "wait_until_ready", None)
        if ping is not None:
            ping(port, 60.0)

    def after(self, stack: Stack, port: int) -> None:
        uri: str = self._module().mongo_uri(port)
        stack.state.exports["GAMEVM_MONGODB_URI"] = uri


TENSORDOCK_DELAY_SCALE_ENV = "TENSORDOCK_SIM_DELAY_SCALE"


class TensorDockSimulatorStep(ProcessStep):
    """The TensorDock API simulator (python -m gamevm_dev.simulators.tensordock)."""

    name = "tensordock-simulator"
    module_name: ClassVar[str] = "gamevm_dev.simulators.tensordock"
    api_path: ClassVar[str] = "/api/v2"

    def executable(self, stack: Stack) -> str:
        return sys.executable

    def command(self, stack: Stack, port: int) -> list[str]:
        return [
            sys.executable, "-m", self.module_name, "--host", "127.0.0.1", "--port", str(port),
            # VMs survive a simulator restart, like the cluster's GameVMs do.
            "--state-file", str(stack.root / "tensordock-state.json"),
            # Realistic delays (boot, a 4-minute configuration) unless told otherwise, as
            # CLOUDYPAD_SIM_DELAY_SCALE does for the CloudyPad simulator.
            "--delay-scale", os.environ.get(TENSORDOCK_DELAY_SCALE_ENV, "1"),
        ]  # fmt: skip

    def up(self, stack: Stack) -> str:
        if not _has_module(self.module_name):
            raise StepPendingError(f"module {self.module_name} has not landed yet")
        return super().up(stack)

    def healthy(self, stack: Stack, port: int) -> bool:
        return port_open(port)

    def wait_healthy(self, stack: Stack, process: ManagedProcess, port: int) -> None:
        wait_for_port(port, 30, alive=process.alive)

    def after(self, stack: Stack, port: int) -> None:
        module = importlib.import_module(self.module_name)
        api_path = str(getattr(module, "API_PATH", self.api_path))
        stack.state.exports["GAMEVM_TENSORDOCK_API_URL"] = f"http://127.0.0.1:{port}{api_path}"


class ExternalTensorDockStep(Step):
    """`--tensordock-url`: any TensorDock-compatible endpoint the stack does not start
    (a simulator run elsewhere, a recording proxy, the real API). Only its URL is
    exported; nothing is started or stopped."""

    name = "tensordock-simulator"

    def __init__(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--tensordock-url must be an http(s) URL, got {url!r}")
        self.url = url.rstrip("/")

    def up(self, stack: Stack) -> str:
        stack.state.exports["GAMEVM_TENSORDOCK_API_URL"] = self.url
        return f"external endpoint {self.url} (no simulator started)"


class CloudyPadSimulatorStep(Step):
    """The CloudyPad CLI: the simulator by default (no process, just its home folder and CLI
    path), or any CloudyPad CLI given by `--cloudypad-cli PATH` (`real`: the real CLI
    0.45.1, built from the vendored source by gamevm_dev.devstack.cloudypad_cli)."""

    name = "cloudypad-simulator"
    module_name: ClassVar[str] = "gamevm_dev.simulators.cloudypad_cli"

    def __init__(self, cli: str | None = None) -> None:
        self.cli = cli

    def up(self, stack: Stack) -> str:
        home = stack.root / "cloudypad-home"
        if self.cli:
            from gamevm_dev.devstack.cloudypad_cli import CloudyPadBuildError, resolve_cli

            try:
                script = resolve_cli(self.cli)
            except CloudyPadBuildError as exc:
                raise StackError(str(exc)) from exc
        else:
            script = venv_script("cloudypad-sim")
            if not _has_module(self.module_name) or not script.exists():
                raise StepPendingError(
                    f"module {self.module_name} / script {script.name} not there yet"
                )
        home.mkdir(parents=True, exist_ok=True)
        stack.state.exports["CLOUDYPAD_HOME"] = str(home)
        stack.state.exports["GAMEVM_CLOUDYPAD_CLI"] = str(script)
        return f"CLI {script}, CLOUDYPAD_HOME={home}"

    def release(self, stack: Stack) -> list[str]:
        """Stop the detached Wolf responders of the simulated instances, by pid."""
        home = stack.root / "cloudypad-home"
        if not home.exists() or not _has_module("gamevm_dev.simulators.cloudypad.store"):
            return []
        from gamevm_dev.simulators.cloudypad.store import kill_wolf, wolf_pids

        stopped = []
        for pid in wolf_pids(home):
            kill_wolf(pid)
            stack.progress(f"cloudypad wolf responder: stopped (pid {pid})")
            stopped.append(f"wolf-{pid}")
        return stopped


MASTER_KEY = "access-master-key"
"""The operator's key-derivation secret (gamevm.handlers.lifecycle.MASTER_KEY; not
imported, that would pull kopf into `dev status`)."""


class SimulatorCredentialsStep(Step):
    """The provider credentials Secret the operator reads: a random access-master-key
    plus values the simulators accept (fake by design). Keys already in the Secret are
    never overwritten (real credentials put there by hand survive `dev up`); missing
    ones are added. Values go to kubectl on stdin, never on its command line."""

    name = "simulator-credentials"

    def __init__(self, tensordock_token: str | None = None) -> None:
        self.tensordock_token = tensordock_token
        """Given with `--tensordock-token`: written even over an existing value."""

    def _values(self, stack: Stack) -> dict[str, str]:
        from gamevm.providers.credentials import CREDENTIAL_KEYS, TENSORDOCK_TOKEN

        values: dict[str, str] = {MASTER_KEY: secrets.token_urlsafe(48)}
        for keys in CREDENTIAL_KEYS.values():
            for key in keys.required:
                values[key] = f"gamevm-dev-{key.lower().replace('_', '-')}"
        if self.tensordock_token:
            values[TENSORDOCK_TOKEN] = self.tensordock_token
        else:
            app = importlib.import_module(f"{TensorDockSimulatorStep.module_name}.app")
            values[TENSORDOCK_TOKEN] = str(app.DEFAULT_TOKEN)
        # The CloudyPad simulator wants GCP credentials as a file that exists.
        gcp_file = stack.root / "cloudypad-home" / "gcp-service-account.json"
        gcp_file.parent.mkdir(parents=True, exist_ok=True)
        gcp_file.write_text('{"type": "service_account", "project_id": "gamevm-dev"}\n')
        values["GOOGLE_APPLICATION_CREDENTIALS"] = str(gcp_file)
        return values

    def up(self, stack: Stack) -> str:
        if not _has_module(TensorDockSimulatorStep.module_name) or not _has_module(
            "gamevm.providers.credentials"
        ):
            raise StepPendingError("simulators or gamevm.providers.credentials not there yet")
        from gamevm.settings import Settings

        name = Settings().credentials_secret
        where = f"{OPERATOR_NAMESPACE}/{name}"
        namespace = stack.kubectl(
            "create", "namespace", OPERATOR_NAMESPACE, "--dry-run=client", "-o=yaml"
        )
        stack.kubectl("apply", "-f", "-", input_text=namespace.stdout)
        found = stack.kubectl(
            "get", "secret", name, f"--namespace={OPERATOR_NAMESPACE}", "-o=json", check=False
        )
        if found.returncode != 0:
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": OPERATOR_NAMESPACE},
                "stringData": self._values(stack),
            }
            stack.kubectl("create", "-f", "-", input_text=json.dumps(secret))
            return f"created secret {where} (simulator values)"
        present = set(json.loads(found.stdout).get("data") or {})
        values = self._values(stack)
        missing = {k: v for k, v in values.items() if k not in present}
        if self.tensordock_token:
            from gamevm.providers.credentials import TENSORDOCK_TOKEN

            missing[TENSORDOCK_TOKEN] = values[TENSORDOCK_TOKEN]
        if not missing:
            return f"secret {where} complete, left as is"
        stack.kubectl(
            "patch", "secret", name, f"--namespace={OPERATOR_NAMESPACE}", "--type=merge",
            "--patch-file=/dev/stdin",
            input_text=json.dumps({"stringData": missing}),
        )  # fmt: skip
        return f"secret {where}: added {', '.join(sorted(missing))}"


class OperatorStep(ProcessStep):
    """`gamevm-operator run` against the stack, with the stack's GAMEVM_* settings."""

    name = "operator"
    enabled: bool = True

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def executable(self, stack: Stack) -> str:
        return str(venv_script("gamevm-operator"))

    def command(self, stack: Stack, port: int) -> list[str]:
        return [str(venv_script("gamevm-operator")), "run"]

    def env(self, stack: Stack, port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(stack.state.exports)
        env["GAMEVM_HTTP_HOST"] = "127.0.0.1"
        env["GAMEVM_HTTP_PORT"] = str(port)
        env["GAMEVM_API_HOST"] = "127.0.0.1"
        # The heartbeat and read API listen on a second port, recorded like the first.
        api_port = stack.state.port("operator-api", running=False)
        env["GAMEVM_API_PORT"] = str(api_port)
        # Simulated VMs answer on 127.0.0.1; a cluster never sets this.
        env["GAMEVM_WOLF_PROBE_ALLOW_LOOPBACK"] = "true"
        # Every simulated VM heartbeats from 127.0.0.1: lift the per-source limit.
        env.setdefault("GAMEVM_HEARTBEAT_RATE_PER_SECOND", "1000")
        env.setdefault("GAMEVM_HEARTBEAT_BURST", "1000")
        env["GAMEVM_NAMESPACE"] = OPERATOR_NAMESPACE
        # Where the VMs' user data POSTs its configuration report, the API port (loopback:
        # the simulated VMs run on this machine).
        env.setdefault("GAMEVM_PUBLIC_URL", f"http://127.0.0.1:{api_port}")
        return env

    def up(self, stack: Stack) -> str:
        if not self.enabled:
            return "skipped (--no-operator)"
        if not _has_module("gamevm.main"):
            raise StepPendingError("module gamevm.main has not landed yet")
        namespace = stack.kubectl(
            "create", "namespace", OPERATOR_NAMESPACE, "--dry-run=client", "-o=yaml"
        )
        stack.kubectl("apply", "-f", "-", input_text=namespace.stdout)
        return super().up(stack)

    def healthy(self, stack: Stack, port: int) -> bool:
        return port_open(port)

    def wait_healthy(self, stack: Stack, process: ManagedProcess, port: int) -> None:
        wait_for_port(port, 60, alive=process.alive)

    def after(self, stack: Stack, port: int) -> None:
        stack.state.exports["GAMEVM_OPERATOR_URL"] = f"http://127.0.0.1:{port}"
        api_port = stack.state.port("operator-api", running=True)
        stack.state.exports["GAMEVM_OPERATOR_API_URL"] = f"http://127.0.0.1:{api_port}"


class SamplesStep(Step):
    """`kubectl apply` of manifests/samples/ (the EmulatorConfigs and sample GameVMs),
    through its kustomization.yaml when there is one; then, when the operator runs, wait
    until every sample GameVM is `running` (progress every few seconds), so `make dev`
    ends with the samples up. A sample that does not get there in time is named with its
    phase and the stack stays up."""

    name = "samples"
    folder: ClassVar[Path] = REPO_ROOT / "manifests" / "samples"
    running_timeout: ClassVar[float] = 600.0
    """Up to 10 min: the simulators keep realistic delays (a CloudyPad create takes about
    3 min, a TensorDock VM's cloud-init about 4 min on a busy 2-core machine).
    GAMEVM_DEV_SAMPLES_WAIT=<seconds> changes it; 0 does not wait."""
    poll_seconds: ClassVar[float] = 2.0
    report_seconds: ClassVar[float] = 10.0

    def up(self, stack: Stack) -> str:
        files = sorted(self.folder.glob("*.yaml"))
        if not files:
            raise StepPendingError(f"no manifests in {self.folder} yet")
        if (self.folder / "kustomization.yaml").exists():
            stack.kubectl("apply", "-k", str(self.folder))
            applied = f"applied {self.folder.name}/ (kustomization)"
        else:
            stack.kubectl("apply", "-f", str(self.folder))
            applied = f"applied {len(files)} manifests"
        operator = next((s for s in stack.steps if isinstance(s, OperatorStep)), None)
        if operator is None or not operator.enabled:
            return f"{applied}; no operator, not waiting for them"
        if self._timeout() <= 0:
            return f"{applied}; not waiting for them (GAMEVM_DEV_SAMPLES_WAIT=0)"
        return f"{applied}; {self._wait_running(stack)}"

    def _timeout(self) -> float:
        return float(os.environ.get("GAMEVM_DEV_SAMPLES_WAIT", self.running_timeout))

    def _phases(self, stack: Stack) -> dict[str, str]:
        listed = stack.kubectl(
            "get", "-k", str(self.folder), "-o=json", "--ignore-not-found", check=False
        )
        if listed.returncode != 0:
            return {}
        items = json.loads(listed.stdout or "{}").get("items", [])
        return {
            item["metadata"]["name"]: (item.get("status") or {}).get("phase") or "pending"
            for item in items
            if item.get("kind") == "GameVM"
        }

    def _wait_running(self, stack: Stack) -> str:
        started = time.monotonic()
        last_report = started
        phases: dict[str, str] = {}
        timeout = self._timeout()
        while time.monotonic() - started < timeout:
            phases = self._phases(stack)
            waiting = {name: phase for name, phase in phases.items() if phase != "running"}
            if phases and not waiting:
                return f"{len(phases)} GameVMs running after {time.monotonic() - started:.0f}s"
            now = time.monotonic()
            if now - last_report >= self.report_seconds:
                last_report = now
                stack.progress(
                    f"samples: {len(phases) - len(waiting)}/{len(phases)} GameVMs running, "
                    f"waiting for {_describe(waiting)}; {now - started:.0f}s elapsed, "
                    f"at most {timeout - (now - started):.0f}s left"
                )
            time.sleep(self.poll_seconds)
        waiting = {name: phase for name, phase in phases.items() if phase != "running"}
        return (
            f"{len(phases) - len(waiting)}/{len(phases)} GameVMs running after "
            f"{timeout:.0f}s; not yet: {_describe(waiting)} "
            "(kubectl describe gamevm NAME says why)"
        )


def _describe(phases: dict[str, str]) -> str:
    return ", ".join(f"{name} ({phase})" for name, phase in sorted(phases.items()))
