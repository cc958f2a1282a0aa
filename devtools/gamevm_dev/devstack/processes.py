"""Background processes of the local stack: started with a log file and a pidfile,
waited for by TCP port or HTTP health, stopped by pid (SIGTERM, then SIGKILL).

Nothing here knows about Kubernetes; the devstack steps and the pytest fixtures
both build on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gamevm_dev.simulators.ports import LOOPBACK, port_open


class ProcessError(RuntimeError):
    """A managed process did not start, exited early or never became healthy."""


def port_is_free(port: int) -> bool:
    """Whether `port` can be bound on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def pid_alive(pid: int) -> bool:
    """Whether `pid` names a running (non-zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def pid_cmdline(pid: int) -> list[str]:
    """The command line of `pid` (empty when unknown)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pid_rss_bytes(pid: int) -> int:
    """Resident set size of `pid` in bytes (0 when unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def read_pidfile(pidfile: Path) -> int | None:
    """The pid stored in `pidfile`, or None when absent or unreadable."""
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def stop_pid(pid: int, timeout: float = 10.0) -> bool:
    """Stop `pid` (and its process group when it leads one): SIGTERM, wait, then SIGKILL.

    Returns True when the process is gone afterwards.
    """

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # Each managed process leads its own session, so the group id is its pid;
            # signalling the group also reaches helpers it spawned.
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    if not pid_alive(pid):
        _reap(pid)
        return True
    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    send(signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _reap(pid: int) -> None:
    """Collect the exit status when `pid` is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_for_port(port: int, timeout: float, alive: Callable[[], bool] | None = None) -> None:
    """Wait until 127.0.0.1:`port` accepts connections; fail early when `alive()` turns False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if alive is not None and not alive():
            raise ProcessError(f"process exited before listening on {LOOPBACK}:{port}")
        time.sleep(0.1)
    raise ProcessError(f"nothing listens on {LOOPBACK}:{port} after {timeout:.0f}s")


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    """Whether GET `url` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310
            status: int = response.status
            return 200 <= status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_for_http(
    url: str,
    timeout: float,
    context: ssl.SSLContext | None = None,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Wait until GET `url` answers 2xx; fail early when `alive()` turns False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url, context):
            return
        if alive is not None and not alive():
            raise ProcessError(f"process exited before {url} became healthy")
        time.sleep(0.2)
    raise ProcessError(f"{url} not healthy after {timeout:.0f}s")


def log_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _parent_death_signal() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent exits."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class ManagedProcess:
    """One background process with its log file and pidfile.

    The process runs in its own session so a Ctrl-C in the launching shell does not
    reach it, and `stop()` can signal the whole group.
    """

    name: str
    command: Sequence[str]
    log_path: Path
    pid_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    die_with_parent: bool = False
    """Linux: the process gets SIGTERM when the process that started it dies (test
    fixtures use this so a killed pytest leaves nothing running; `dev up` does not)."""
    _popen: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        """The pid from the pidfile (also set for processes started by another `dev up`)."""
        if self._popen is not None:
            return self._popen.pid
        return read_pidfile(self.pid_path)

    def running(self) -> bool:
        """Whether the pidfile names a live process that runs our command's binary."""
        pid = self.pid
        if pid is None or not pid_alive(pid):
            return False
        if self._popen is not None:
            return self._popen.poll() is None
        # Guard against pid reuse: the recorded pid must still run our executable.
        # Scripts run as `python script ...`, so the second word counts too.
        names = {Path(part).name for part in pid_cmdline(pid)[:2]}
        return Path(self.command[0]).name in names

    def start(self, append_log: bool = True) -> int:
        """Start the process; the log file collects stdout and stderr."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if self.env is None else self.env)
        with self.log_path.open("ab" if append_log else "wb") as log:
            log.write(f"--- start {time.strftime('%Y-%m-%dT%H:%M:%S')} {self.name}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                list(self.command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_parent_death_signal if self.die_with_parent else None,  # noqa: PLW1509
            )
        self.pid_path.write_text(f"{self._popen.pid}\n")
        return self._popen.pid

    def alive(self) -> bool:
        """Whether the process is still running (for the wait helpers)."""
        return self.running()

    def exit_code(self) -> int | None:
        """Exit code when we started it and it has exited."""
        return None if self._popen is None else self._popen.poll()

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the process (not its group)."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, sig)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop by pid: SIGTERM, then SIGKILL after `timeout`; removes the pidfile."""
        pid = self.pid
        stopped = True
        if pid is not None and self.running():
            stopped = stop_pid(pid, timeout)
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=1)
        self._popen = None
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        return stopped

    def failure(self, reason: str) -> ProcessError:
        """A ProcessError carrying `reason` and the log tail."""
        tail = log_tail(self.log_path)
        return ProcessError(f"{reason}\n--- last lines of {self.log_path}:\n{tail}")
