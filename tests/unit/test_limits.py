"""The operator raises its soft open-file limit to the hard one."""

import resource
import subprocess
import sys

PROBE = (
    "import resource; from gamevm.limits import raise_open_files_limit; "
    "print(*raise_open_files_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))"
)


def _run_with_soft_limit(soft: int) -> list[int]:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    out = subprocess.run(
        [sys.executable, "-c", PROBE], preexec_fn=lower, capture_output=True, text=True, check=True
    ).stdout
    return [int(value) for value in out.split()]


def test_a_low_soft_limit_is_raised_to_the_hard_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    before, after, soft_now, hard_now = _run_with_soft_limit(256)
    assert before == 256
    expected = hard if hard != resource.RLIM_INFINITY else 1 << 20
    assert after == soft_now == expected
    assert hard_now == hard


def test_a_soft_limit_at_the_hard_limit_is_left_alone() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return
    before, after, soft_now, _ = _run_with_soft_limit(hard)
    assert before == after == soft_now == hard
