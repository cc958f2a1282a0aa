"""hack/prereqs.sh: each missing prerequisite of `make test` / `make dev` is named in one
line with what to install, before anything slow starts."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hack" / "prereqs.sh"
TOOLS = {
    "python3": sys.executable,
    "go": shutil.which("go"),
    "node": shutil.which("node"),
    "npm": shutil.which("npm"),
}
SHELL_TOOLS = ("sed", "env", "dirname", "cat")


def sandbox(tmp_path: Path, present: set[str]) -> dict[str, str]:
    """A PATH holding only `present` of the prerequisites (plus the shell's helpers)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in present:
        target = TOOLS[name]
        if target is None:
            pytest.fail(f"{name} is not installed here: the test needs every prerequisite")
        (bin_dir / name).symlink_to(target)
    for name in SHELL_TOOLS:
        found = shutil.which(name)
        assert found is not None
        (bin_dir / name).symlink_to(found)
    return {**os.environ, "PATH": str(bin_dir), "PYTHON": "python3"}


def check(tmp_path: Path, present: set[str], what: str = "all") -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(SCRIPT), what],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=sandbox(tmp_path, present),
    )


def test_all_present_passes_silently(tmp_path: Path) -> None:
    result = check(tmp_path, set(TOOLS))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("missing", "named", "hint"),
    [
        ("python3", "Python 3.11+", "pyenv"),
        ("go", "Go 1.24+", "https://go.dev/dl/"),
        ("node", "Node.js 20+", "https://nodejs.org/"),
    ],
)
def test_each_missing_one_is_named_with_what_to_install(
    tmp_path: Path, missing: str, named: str, hint: str
) -> None:
    result = check(tmp_path, set(TOOLS) - {missing})
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("missing")]
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert hint in lines[0]


def test_all_missing_are_named_at_once(tmp_path: Path) -> None:
    result = check(tmp_path, set())
    assert result.returncode == 1
    assert result.stderr.count("missing prerequisite:") == 3


def test_python_only_for_the_virtualenv(tmp_path: Path) -> None:
    assert check(tmp_path, {"python3"}, "python").returncode == 0
