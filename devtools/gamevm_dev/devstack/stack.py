"""The local stack as an ordered list of pluggable steps.

Each step starts (or checks) one piece: etcd, kube-apiserver, the controller
manager, the CRDs, the Mongo-compatible server, the simulators, the operator,
the samples. A step whose module has not landed yet raises `StepPendingError` and
the stack goes on. `Stack.up` is idempotent: running pieces are left alone.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import ClassVar

from gamevm_dev.devstack import binaries
from gamevm_dev.devstack.processes import ManagedProcess, pid_rss_bytes
from gamevm_dev.devstack.state import StackState, locked

Progress = Callable[[str], None]


def stderr_progress(line: str) -> None:
    """Progress on stderr, so stdout stays shell-sourceable."""
    print(f"[dev] {line}", file=sys.stderr, flush=True)


class StepPendingError(Exception):
    """The step's module has not landed yet; the stack carries on without it."""


class StackError(RuntimeError):
    """A step failed; the message says which and why."""


class Step:
    """One piece of the stack. Subclasses set `name` and implement `up`."""

    name: ClassVar[str] = ""
    required_binaries: ClassVar[tuple[binaries.BinarySpec, ...]] = ()

    def up(self, stack: Stack) -> str:
        """Bring the piece up (or confirm it is up); returns a short summary."""
        raise NotImplementedError

    def processes(self, stack: Stack) -> list[ManagedProcess]:
        """Processes this step owns, for `down` and `status` (by pidfile)."""
        return []

    def release(self, stack: Stack) -> list[str]:
        """Stop what the step's programs started on their own (e.g. detached helpers)."""
        return []


class ProcessStep(Step):
    """A step that runs one long-lived process and waits until it is healthy."""

    startup_timeout: ClassVar[float] = 60.0

    def command(self, stack: Stack, port: int) -> list[str]:
        raise NotImplementedError

    def env(self, stack: Stack, port: int) -> dict[str, str] | None:
        """Environment of the process (None: inherit ours)."""
        return None

    def prepare(self, stack: Stack, port: int) -> None:
        """Files the process needs before it starts."""

    def wait_healthy(self, stack: Stack, process: ManagedProcess, port: int) -> None:
        raise NotImplementedError

    def healthy(self, stack: Stack, port: int) -> bool:
        raise NotImplementedError

    def after(self, stack: Stack, port: int) -> None:
        """Record exports once the process is healthy (also when it was already up)."""

    def executable(self, stack: Stack) -> str:
        """The program the process runs; guards stop/status against a reused pid."""
        raise NotImplementedError

    def processes(self, stack: Stack) -> list[ManagedProcess]:
        # Stop and status need only the pidfile and the program name: no building.
        return [stack.state.process(self.name, [self.executable(stack)])]

    def up(self, stack: Stack) -> str:
        existing = self.processes(stack)[0]
        running = existing.running()
        port = stack.state.port(self.name, running)
        if running and self.healthy(stack, port):
            self.after(stack, port)
            return f"already running (pid {existing.pid}, 127.0.0.1:{port})"
        if running:
            stack.progress(f"{self.name}: pid {existing.pid} is unhealthy, restarting")
            existing.stop()
        self.prepare(stack, port)
        process = stack.state.process(self.name, self.command(stack, port), self.env(stack, port))
        process.start()
        try:
            self.wait_healthy(stack, process, port)
        except RuntimeError as exc:  # ProcessError, or a health check's own error
            process.stop()
            raise process.failure(str(exc)) from exc
        self.after(stack, port)
        return f"started (pid {process.pid}, 127.0.0.1:{port})"


class Stack:
    """One local stack living in a state folder."""

    def __init__(
        self,
        root: Path,
        steps: Sequence[Step] | None = None,
        progress: Progress = stderr_progress,
        die_with_parent: bool = False,
    ) -> None:
        from gamevm_dev.devstack.steps import default_steps

        self.root = root.resolve()
        self.progress = progress
        self.steps: list[Step] = list(default_steps() if steps is None else steps)
        self.state = StackState.load(self.root)
        self.state.die_with_parent = die_with_parent
        self._bins: dict[str, Path] = {}

    # Binaries ------------------------------------------------------------------
    def ensure_binaries(self, specs: Collection[binaries.BinarySpec]) -> None:
        """Find (or build, in one go) every binary in `specs`."""
        wanted = [spec for spec in specs if spec.name not in self._bins]
        if wanted:
            self._bins.update(binaries.resolve(wanted, self.progress))

    def binary(self, spec: binaries.BinarySpec) -> Path:
        """Path of one binary, found or built on first use."""
        self.ensure_binaries([spec])
        return self._bins[spec.name]

    def known_binary(self, spec: binaries.BinarySpec) -> Path:
        """Path of a binary without building (for stop/status); a placeholder if unknown."""
        if spec.name in self._bins:
            return self._bins[spec.name]
        try:
            found = binaries.find_existing(spec)
        except binaries.BinaryNotFoundError:
            found = None
        return found or Path(spec.name)

    # Kubernetes access ---------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.state.kubeconfig

    @property
    def server_url(self) -> str:
        return f"https://127.0.0.1:{self.state.ports['kube-apiserver']}"

    def kubectl(
        self,
        *args: str,
        input_text: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl with the stack's admin kubeconfig."""
        command = [str(self.binary(binaries.KUBECTL)), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            command,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise StackError(
                f"`kubectl {' '.join(args)}` failed (exit {result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    # Lifecycle -----------------------------------------------------------------
    def _selected(self, only: Collection[str] | None) -> list[Step]:
        if only is None:
            return self.steps
        unknown = set(only) - {step.name for step in self.steps}
        if unknown:
            raise StackError(f"unknown steps: {', '.join(sorted(unknown))}")
        return [step for step in self.steps if step.name in only]

    def up(self, only: Collection[str] | None = None) -> dict[str, str]:
        """Bring up every step (or those named in `only`), in order; idempotent.

        Returns each step's summary. Raises StackError naming the failed step.
        """
        summaries: dict[str, str] = {}
        with locked(self.root):
            self.state.exports["GAMEVM_DEV_STATE_DIR"] = str(self.root)
            steps = self._selected(only)
            up_started = time.monotonic()
            self.progress(f"{len(steps)} steps: {', '.join(step.name for step in steps)}")
            self.ensure_binaries({s.name: s for st in steps for s in st.required_binaries}.values())
            for index, step in enumerate(steps, start=1):
                started = time.monotonic()
                try:
                    summary = step.up(self)
                except StepPendingError as pending:
                    summary = f"pending: {pending}"
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    # Every step error (ProcessError, BinaryNotFoundError, PortTakenError,
                    # the mongo module's own errors) becomes one StackError naming the step.
                    raise StackError(f"{step.name}: {exc}") from exc
                finally:
                    self.state.save()
                elapsed = time.monotonic() - started
                summaries[step.name] = summary
                remaining = [later.name for later in steps[index:]]
                self.progress(
                    f"{step.name}: {summary} [{elapsed:.1f}s] ({index}/{len(steps)}, "
                    f"{time.monotonic() - up_started:.0f}s elapsed; "
                    f"{'next: ' + ', '.join(remaining) if remaining else 'done'})"
                )
        return summaries

    def down(self) -> list[str]:
        """Stop every process of the stack by pid, last step first; data is kept."""
        stopped: list[str] = []
        with locked(self.root):
            for step in reversed(self.steps):
                for process in step.processes(self):
                    pid = process.pid
                    if pid is not None and process.running():
                        started = time.monotonic()
                        verdict = "stopped" if process.stop() else "NOT stopped"
                        elapsed = time.monotonic() - started
                        self.progress(f"{process.name}: {verdict} (pid {pid}) [{elapsed:.1f}s]")
                        stopped.append(process.name)
                    else:
                        process.stop()  # drop a stale pidfile
                stopped.extend(step.release(self))
        return stopped

    def status(self) -> tuple[bool, list[str]]:
        """(every recorded process runs, one line per process)."""
        lines: list[str] = []
        all_running = True
        for step in self.steps:
            for process in step.processes(self):
                pid = process.pid
                if pid is None:
                    continue
                if process.running():
                    rss = pid_rss_bytes(pid) / 2**20
                    port = self.state.ports.get(process.name)
                    where = f", 127.0.0.1:{port}" if port else ""
                    lines.append(f"{process.name}: running (pid {pid}{where}, RSS {rss:.0f} MiB)")
                else:
                    all_running = False
                    lines.append(
                        f"{process.name}: NOT running (stale pid {pid}; log {process.log_path})"
                    )
        if not lines:
            all_running = False
            lines.append(f"nothing started in {self.root} (run `gamevm-dev up`)")
        return all_running, lines

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each running process."""
        sizes: dict[str, int] = {}
        for step in self.steps:
            for process in step.processes(self):
                pid = process.pid
                if pid is not None and process.running():
                    sizes[process.name] = pid_rss_bytes(pid)
        return sizes
