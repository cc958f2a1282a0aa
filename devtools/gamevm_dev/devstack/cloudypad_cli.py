"""The real CloudyPad CLI 0.45.1, built from the vendored upstream source.

`build_real_cli()` runs the build script (default `../shared/vendor/build-cloudypad.sh`
beside the repository, overridable by $GAMEVM_CLOUDYPAD_BUILD_SCRIPT): about 2 minutes
once (npm registry), cached under ~/.cache/gamevm/cloudypad-0.45.1, instant afterwards.
It prints the path of a `cloudypad` launcher; every call of that CLI takes 4-5 s.

`python -m gamevm_dev.devstack.cloudypad_cli` builds it and prints the launcher path
(`make cloudypad-cli`).
"""

import os
import subprocess
import sys
from pathlib import Path

from gamevm_dev.devstack.binaries import REPO_ROOT

BUILD_SCRIPT_ENV = "GAMEVM_CLOUDYPAD_BUILD_SCRIPT"
DEFAULT_BUILD_SCRIPT = REPO_ROOT.parent / "shared" / "vendor" / "build-cloudypad.sh"
BUILD_TIMEOUT_S = 1200.0
REAL = "real"
"""The `--cloudypad-cli` / GAMEVM_TEST_CLOUDYPAD_CLI value meaning: build and use it."""


class CloudyPadBuildError(RuntimeError):
    """The build script is missing or failed."""


def build_script() -> Path:
    """The build script to run."""
    override = os.environ.get(BUILD_SCRIPT_ENV)
    return Path(override) if override else DEFAULT_BUILD_SCRIPT


def build_real_cli(timeout_s: float = BUILD_TIMEOUT_S) -> Path:
    """Build (or find cached) the real CLI; returns its launcher."""
    script = build_script()
    if not script.is_file():
        raise CloudyPadBuildError(
            f"CloudyPad build script {script} not found (set {BUILD_SCRIPT_ENV})"
        )
    try:
        done = subprocess.run(
            ["bash", str(script)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise CloudyPadBuildError(f"{script} did not finish in {timeout_s:.0f}s") from exc
    lines = done.stdout.strip().splitlines()
    launcher = Path(lines[-1]) if lines else None
    if done.returncode != 0 or launcher is None or not launcher.is_file():
        raise CloudyPadBuildError(
            f"{script} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
        )
    return launcher


def resolve_cli(value: str) -> Path:
    """`real` -> the built CLI; anything else is a path to an executable."""
    if value == REAL:
        return build_real_cli()
    path = Path(value).expanduser().resolve()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise CloudyPadBuildError(f"CloudyPad CLI {value!r} is not an executable file")
    return path


def main() -> int:
    """Build the real CLI and print its launcher path."""
    try:
        print(build_real_cli())
    except CloudyPadBuildError as exc:
        print(f"cloudypad-cli: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
