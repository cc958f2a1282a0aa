"""`make test`'s pytest-xdist scheduling (tests/fixtures/parallel.py)."""

from types import SimpleNamespace
from typing import Any

from tests.fixtures.parallel import REAL_CLI_SCOPE, pytest_xdist_make_scheduler


class _Config(SimpleNamespace):
    def getvalue(self, name: str) -> Any:
        return getattr(self, name)


def _scheduler(dist: str) -> Any:
    config = _Config(dist=dist, tx=["2*popen"])
    return pytest_xdist_make_scheduler(config, log=None)  # type: ignore[arg-type]


def test_real_cli_tests_are_one_unit_and_other_files_stay_whole() -> None:
    scheduler = _scheduler("loadfile")
    scope = scheduler._split_scope
    assert scope("tests/contract/test_cloudypad_cli_contract.py::test_x[real]") == REAL_CLI_SCOPE
    assert scope("tests/contract/test_cloudypad_real_cli.py::test_y[gcp]") == REAL_CLI_SCOPE
    assert scope("tests/contract/test_cloudypad_real_cli.py::test_z") == REAL_CLI_SCOPE
    sim = "tests/contract/test_cloudypad_cli_contract.py::test_x[sim]"
    assert scope(sim) == "tests/contract/test_cloudypad_cli_contract.py"
    assert scope("tests/e2e/test_chaos_e2e.py::test_a") == "tests/e2e/test_chaos_e2e.py"


def test_other_dist_modes_keep_xdist_schedulers() -> None:
    assert _scheduler("load") is None
    assert _scheduler("worksteal") is None
