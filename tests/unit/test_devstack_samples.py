"""`make dev`'s last step: the samples are applied and, when the operator runs, waited
for until every sample GameVM is running, with progress lines on the way."""

import json
import subprocess
from collections.abc import Iterator
from typing import Any, ClassVar

from gamevm_dev.devstack.extras import OperatorStep, SamplesStep


class FakeStack:
    """Just what SamplesStep uses: steps, kubectl, progress."""

    def __init__(self, phases: Iterator[dict[str, str]], operator: bool = True) -> None:
        self.steps = [OperatorStep(enabled=operator)]
        self.phases = phases
        self.calls: list[tuple[str, ...]] = []
        self.lines: list[str] = []

    def progress(self, line: str) -> None:
        self.lines.append(line)

    def kubectl(self, *args: str, **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[0] == "get":
            items = [
                {"kind": "GameVM", "metadata": {"name": n}, "status": {"phase": p}}
                for n, p in next(self.phases).items()
            ]
            items.append({"kind": "EmulatorConfig", "metadata": {"name": "nes"}})
            return subprocess.CompletedProcess(args, 0, json.dumps({"items": items}), "")
        return subprocess.CompletedProcess(args, 0, "", "")


class QuickSamples(SamplesStep):
    running_timeout: ClassVar[float] = 0.5
    poll_seconds: ClassVar[float] = 0.0
    report_seconds: ClassVar[float] = 0.0


def test_waits_until_every_sample_runs() -> None:
    stack = FakeStack(
        iter(
            [
                {"a": "creating", "b": "pending"},
                {"a": "running", "b": "configuring"},
                {"a": "running", "b": "running"},
            ]
        )
    )
    summary = QuickSamples().up(stack)  # type: ignore[arg-type]
    assert stack.calls[0][:2] == ("apply", "-k")
    assert "2 GameVMs running" in summary
    assert any("1/2 GameVMs running, waiting for b (configuring)" in line for line in stack.lines)
    assert all("elapsed" in line and "left" in line for line in stack.lines)


def test_names_the_samples_that_are_not_running_in_time() -> None:
    def forever() -> Iterator[dict[str, str]]:
        while True:
            yield {"a": "running", "b": "error"}

    summary = QuickSamples().up(FakeStack(forever()))  # type: ignore[arg-type]
    assert "1/2 GameVMs running" in summary
    assert "not yet: b (error)" in summary


def test_does_not_wait_without_the_operator() -> None:
    stack = FakeStack(iter([]), operator=False)
    summary = QuickSamples().up(stack)  # type: ignore[arg-type]
    assert "not waiting" in summary
    assert [call[0] for call in stack.calls] == ["apply"]
