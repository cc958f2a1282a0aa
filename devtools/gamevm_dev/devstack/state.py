"""The state folder of one local stack: layout, allocated ports, exported settings.

Layout (default `.dev/` in the repo root):

    certs/            CA, serving and client certs, service-account keys
    etcd-data/        etcd's data
    logs/<name>.log   one log per process
    pids/<name>.pid   one pidfile per process
    kubeconfig        admin kubeconfig (user `admin`, group system:masters)
    state.json        ports chosen by the first `up`, reused afterwards
    env               the shell-sourceable lines printed by `up` and `status`
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from gamevm_dev.devstack.binaries import REPO_ROOT
from gamevm_dev.devstack.processes import ManagedProcess, port_is_free
from gamevm_dev.filelock import exclusive
from gamevm_dev.simulators.ports import free_port

STATE_DIR_ENV = "GAMEVM_DEV_STATE_DIR"


def default_state_dir() -> Path:
    """GAMEVM_DEV_STATE_DIR, else `.dev/` in the repo root."""
    override = os.environ.get(STATE_DIR_ENV)
    return Path(override) if override else REPO_ROOT / ".dev"


class PortTakenError(RuntimeError):
    """A port pinned by the user is taken by another process."""


@dataclass
class StackState:
    """Ports and exported settings persisted in state.json."""

    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    die_with_parent: bool = False
    """Processes stop when the starting process dies (pytest fixtures), see ManagedProcess."""

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @classmethod
    def load(cls, root: Path) -> StackState:
        """The saved state of `root`, or an empty one."""
        root = root.resolve()
        state = cls(root)
        try:
            data = json.loads(state.state_file.read_text())
        except (OSError, ValueError):
            return state
        state.ports = {str(k): int(v) for k, v in data.get("ports", {}).items()}
        state.exports = {str(k): str(v) for k, v in data.get("exports", {}).items()}
        return state

    def save(self) -> None:
        """Write state.json and the env file."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"ports": self.ports, "exports": self.exports}
        self.state_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        self.env_file.write_text("".join(line + "\n" for line in self.export_lines()))

    def export_lines(self) -> list[str]:
        """`export NAME=value` lines, quoted for POSIX shells."""
        return [f"export {name}={shlex.quote(value)}" for name, value in self.exports.items()]

    def process(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> ManagedProcess:
        """The managed process `name` with its log and pidfile in this folder."""
        return ManagedProcess(
            name=name,
            command=command,
            log_path=self.logs / f"{name}.log",
            pid_path=self.pids / f"{name}.pid",
            env=env,
            cwd=self.root,
            die_with_parent=self.die_with_parent,
        )

    def port(self, name: str, running: bool) -> int:
        """The port of component `name`: pinned by GAMEVM_DEV_<NAME>_PORT, else the one
        recorded earlier, else a fresh free one.

        `running` says the component already runs (its port is then ours, not taken).
        """
        env_name = f"GAMEVM_DEV_{name.upper().replace('-', '_')}_PORT"
        pinned = os.environ.get(env_name)
        if pinned:
            port = int(pinned)
            if not running and not port_is_free(port):
                raise PortTakenError(
                    f"port {port} on 127.0.0.1 (from {env_name}) is taken by another "
                    f"process; free it (`ss -ltnp 'sport = :{port}'` shows who) or unset {env_name}"
                )
        else:
            recorded = self.ports.get(name)
            if recorded is not None and (running or port_is_free(recorded)):
                port = recorded
            else:
                port = free_port()
        self.ports[name] = port
        return port


def locked(root: Path) -> contextlib.AbstractContextManager[None]:
    """Hold an exclusive lock on the state folder, so two `dev up` never race."""
    return exclusive(root / ".lock")
