"""`gamevm-dev up --cloudypad-cli PATH|real`: the local stack drives another CloudyPad CLI."""

from pathlib import Path

import pytest

from gamevm_dev.devstack.cli import build_parser
from gamevm_dev.devstack.cloudypad_cli import BUILD_SCRIPT_ENV, resolve_cli
from gamevm_dev.devstack.extras import CloudyPadSimulatorStep
from gamevm_dev.devstack.stack import Stack, StackError
from gamevm_dev.devstack.steps import default_steps


def test_a_cli_path_replaces_the_simulator(tmp_path: Path) -> None:
    cli = tmp_path / "cloudypad"
    cli.write_text("#!/bin/sh\necho 0.45.1\n")
    cli.chmod(0o755)
    args = build_parser().parse_args(["up", "--cloudypad-cli", str(cli)])
    steps = default_steps(with_operator=False, cloudypad_cli=args.cloudypad_cli)
    (step,) = [s for s in steps if isinstance(s, CloudyPadSimulatorStep)]
    stack = Stack(tmp_path / "stack", steps=[step])
    step.up(stack)
    assert stack.state.exports["GAMEVM_CLOUDYPAD_CLI"] == str(cli)
    assert stack.state.exports["CLOUDYPAD_HOME"] == str(stack.root / "cloudypad-home")


def test_a_missing_cli_is_a_clear_failure(tmp_path: Path) -> None:
    step = CloudyPadSimulatorStep(str(tmp_path / "nope"))
    with pytest.raises(StackError, match="is not an executable file"):
        step.up(Stack(tmp_path / "stack", steps=[step]))


def test_real_builds_through_the_build_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = tmp_path / "built" / "cloudypad"
    launcher.parent.mkdir()
    launcher.write_text("#!/bin/sh\n")
    script = tmp_path / "build.sh"
    script.write_text(f"#!/bin/bash\necho building >&2\necho {launcher}\n")
    monkeypatch.setenv(BUILD_SCRIPT_ENV, str(script))
    assert resolve_cli("real") == launcher
    script.write_text("#!/bin/bash\necho 'no node' >&2\nexit 1\n")
    with pytest.raises(RuntimeError, match="no node"):
        resolve_cli("real")
