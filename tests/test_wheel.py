"""The built wheel ships the operator only: no simulator, local stack or bench module."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_only_the_operator(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("gamevm_operator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = [n for n in names if n.endswith(".py")]
    assert "gamevm/main.py" in modules
    assert "gamevm/providers/data/cities.json" in names
    assert all(n.startswith(("gamevm/", "gamevm_operator-")) for n in names), names
    shipped_dev = [
        n
        for n in modules
        if any(part in n for part in ("simulators", "devstack", "gamevm_dev", "bench"))
    ]
    assert shipped_dev == []
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "cloudypad-sim" not in scripts
    assert "gamevm_dev" not in scripts


def test_operator_cli_has_no_dev_command() -> None:
    from gamevm.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"run", "crds"}  # type: ignore[attr-defined]
