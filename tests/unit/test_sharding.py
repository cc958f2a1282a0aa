"""GAMEVM_SHARD: every uid belongs to exactly one shard, spread evenly; bad values rejected."""

import uuid

import pytest
from pydantic import ValidationError

from gamevm.services.sharding import Shard, parse_shard, shard_of
from gamevm.settings import Settings


def test_every_uid_has_exactly_one_owner_and_shards_are_even() -> None:
    uids = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(4000)]
    shards = [Shard(i, 4) for i in range(4)]
    owners = [[s.index for s in shards if s.owns(uid)] for uid in uids]
    assert all(len(o) == 1 for o in owners)
    counts = [sum(1 for o in owners if o == [i]) for i in range(4)]
    assert min(counts) > 900, counts


def test_shard_is_stable_for_a_uid() -> None:
    assert shard_of("3f1c0d2e-aaaa-bbbb-cccc-000000000001", 2) == shard_of(
        "3f1c0d2e-aaaa-bbbb-cccc-000000000001", 2
    )


def test_parse_shard() -> None:
    assert parse_shard(None) is None
    assert parse_shard("0/1") is None
    assert parse_shard("1/2") == Shard(1, 2)
    with pytest.raises(ValueError, match="0 <= i < n"):
        parse_shard("2/2")


def test_settings_reject_a_shard_out_of_range() -> None:
    assert Settings.model_validate({"shard": "1/3"}).shard == "1/3"
    with pytest.raises(ValidationError, match="shard"):
        Settings.model_validate({"shard": "3/3"})
    with pytest.raises(ValidationError, match="shard"):
        Settings.model_validate({"shard": "a/b"})
