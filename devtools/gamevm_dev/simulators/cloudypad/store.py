"""On-disk state of the CloudyPad simulator under $CLOUDYPAD_HOME.

- `instances/<name>/state.yml`: CloudyPad-shaped state (`version`, `name`,
  `provision{provider, input, output}`, `configuration{configurator, input, output}`).
  NOT in real CloudyPad: `provision.output.portForwards` {"47989": <port>}, the loopback
  port of this VM's Wolf responder (adapters honour it when present, identity otherwise).
- `instances/<name>/sim.json`: the simulated server's power state (what a real CLI asks
  the cloud for): `{phase, target, until}`; a transitional phase becomes `target` once
  `until` (epoch) has passed.
- `instances/<name>/wolf.pid`, `wolf.port`, `wolf-state` (busy|free): the detached Wolf
  responder (`python -m gamevm_dev.simulators.wolf`) of a powered-on VM.
- `sim-faults.json`: faults (see gamevm_dev.simulators.cloudypad.faults).
- `sim-log.jsonl`: one line per command run: {time, command, name, provider, exit}.
  Destroyed instances stay visible here (leak and double-create assertions).
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from gamevm_dev.filelock import exclusive
from gamevm_dev.simulators.ports import free_port

TRANSITIONAL = {"starting": "running", "stopping": "stopped", "restarting": "running"}
WOLF_MODULE = "gamevm_dev.simulators.wolf"


def locked(home: Path) -> contextlib.AbstractContextManager[None]:
    """Serialise read-modify-write of shared files across concurrent CLI processes (in
    `instances/`, the one folder every run shares: a caller may give each run a data root
    of its own that links to it)."""
    return exclusive(home / "instances" / ".sim.lock")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class InstanceDir:
    """One instance's directory."""

    def __init__(self, home: Path, name: str) -> None:
        self.home = home
        self.name = name
        self.path = home / "instances" / name

    @property
    def exists(self) -> bool:
        """True when a state file exists."""
        return (self.path / "state.yml").is_file()

    def read_state(self) -> dict[str, Any]:
        """state.yml as a dict."""
        data = yaml.safe_load((self.path / "state.yml").read_text())
        return data if isinstance(data, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        """Write state.yml atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.path / "state.yml", yaml.safe_dump(state, sort_keys=False))

    def read_power(self) -> dict[str, Any]:
        """sim.json, with the transitional phase resolved against the clock."""
        try:
            power: dict[str, Any] = json.loads((self.path / "sim.json").read_text())
        except (OSError, ValueError):
            return {"phase": "unknown"}
        target = TRANSITIONAL.get(power.get("phase", ""))
        if target and time.time() >= float(power.get("until", 0)):
            power = {"phase": target}
        return power

    def write_power(self, phase: str, seconds: float = 0.0) -> float:
        """Enter `phase`; transitional phases settle after `seconds`. Returns `until`."""
        until = time.time() + seconds
        target = TRANSITIONAL.get(phase)
        power = (
            {"phase": phase, "until": until}
            if target and seconds > 0
            else {"phase": target or phase}
        )
        self.path.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.path / "sim.json", json.dumps(power))
        return until

    # -- Wolf ----------------------------------------------------------------------------

    @property
    def wolf_state_file(self) -> Path:
        """busy|free, read by the responder on every request."""
        return self.path / "wolf-state"

    def wolf_port(self) -> int | None:
        """The port the responder bound (or will bind)."""
        with contextlib.suppress(OSError, ValueError):
            return int((self.path / "wolf.port").read_text())
        return None

    def wolf_pid(self) -> int | None:
        """The responder's pid when it is alive and really ours."""
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.path / "wolf.pid").read_text())
            if is_wolf_process(pid):
                return pid
        return None

    def start_wolf(self, not_before: float) -> int:
        """Spawn the detached responder; it binds at `not_before`. Returns its port."""
        self.stop_wolf()
        port = self.wolf_port() or free_port()
        _write_atomic(self.path / "wolf.port", str(port))
        if not self.wolf_state_file.exists():
            self.wolf_state_file.write_text("free")
        log = (self.path / "wolf.log").open("ab")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                WOLF_MODULE,
                "--port",
                str(port),
                "--hostname",
                f"cloudypad-{self.name}",
                "--state-file",
                str(self.wolf_state_file),
                "--port-file",
                str(self.path / "wolf.port"),
                "--not-before",
                str(not_before),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
        log.close()
        _write_atomic(self.path / "wolf.pid", str(process.pid))
        return port

    def stop_wolf(self) -> None:
        """Terminate the responder (the VM lost power)."""
        pid = self.wolf_pid()
        if pid is not None:
            kill_wolf(pid)
        with contextlib.suppress(FileNotFoundError):
            (self.path / "wolf.pid").unlink()


def is_wolf_process(pid: int) -> bool:
    """Guard against pid reuse: only ever signal our own responder processes."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return WOLF_MODULE.encode() in cmdline


def kill_wolf(pid: int, grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after a grace period; returns once the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, grace_s):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 5.0)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def instance_names(home: Path) -> list[str]:
    """Names of instances with a state file."""
    root = home / "instances"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "state.yml").is_file())


def wolf_pids(home: Path) -> list[int]:
    """Live responder pids of every instance (for teardown)."""
    root = home / "instances"
    if not root.is_dir():
        return []
    pids = []
    for path in (p for p in root.iterdir() if p.is_dir()):
        pid = InstanceDir(home, path.name).wolf_pid()
        if pid is not None:
            pids.append(pid)
    return pids


def append_log(home: Path, entry: dict[str, Any]) -> None:
    """One JSON line per command."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "sim-log.jsonl").open("a") as handle:
        handle.write(json.dumps({"time": time.time(), **entry}) + "\n")
