"""Leader election settings (the election itself runs against the real API server in
tests/e2e/test_leader_election_e2e.py)."""

from gamevm.main import lease_name
from gamevm.settings import Settings


def test_each_shard_elects_on_its_own_lease() -> None:
    assert lease_name(Settings()) == "gamevm-operator"
    assert lease_name(Settings(shard="1/3")) == "gamevm-operator-shard-1-of-3"
    assert lease_name(Settings(shard="0/1")) == "gamevm-operator"
