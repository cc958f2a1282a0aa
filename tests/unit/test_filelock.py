"""The cross-process lock of the local stack's state and of the CloudyPad simulator."""

import subprocess
import sys
from pathlib import Path

from gamevm_dev.filelock import exclusive

_TRY_LOCK = """
import fcntl, sys
with open(sys.argv[1], "a") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
"""


def _other_process_can_lock(path: Path) -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", _TRY_LOCK, str(path)], capture_output=True, timeout=60, check=False
    )
    return probe.returncode == 0


def test_another_process_cannot_lock_until_the_block_ends(tmp_path: Path) -> None:
    path = tmp_path / "state" / ".lock"
    with exclusive(path):
        assert path.exists()
        assert not _other_process_can_lock(path)
    assert _other_process_can_lock(path)
