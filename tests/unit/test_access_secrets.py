"""Access Secrets are created once, never adopted, and derive from a rotatable key ring."""

import json

import pytest

from gamevm.models import VMStatus
from gamevm.providers.addresses import UnsafeAddressError
from gamevm.providers.base import CreateSpec, Instance
from gamevm.providers.wolf import WolfStatus
from gamevm.services.access import (
    KeyRing,
    derive_access,
    derive_heartbeat_token,
    keyring_from_secret,
    verify_heartbeat_token,
)
from tests.unit.test_reconcile import MASTER, World

UID = "0b9e7c1a-1111-2222-3333-444455556666"
K1, K2 = b"1" * 40, b"2" * 40


def _condition(w: World, type_: str) -> tuple[str, str]:
    found = next(c for c in w.status.conditions if c.type == type_)
    return found.status, found.reason


async def test_an_existing_secret_is_never_adopted() -> None:
    w = World()
    w.secrets.created["vm-access"] = derive_access(b"x" * 32, "someone-else")
    await w.step()  # the choice and the intent (status.accessKeyId) are recorded first
    assert w.status.access_key_id == "default"
    assert w.secrets.calls == 0
    out = await w.step()
    assert w.secrets.calls == 1
    assert w.status.phase is VMStatus.ERROR
    assert _condition(w, "Ready") == ("False", "AccessSecretConflict")
    assert _condition(w, "Provisioned") == ("False", "AccessSecretConflict")
    assert [e.reason for e in out.events] == ["AccessSecretConflict"]  # type: ignore[attr-defined]
    assert w.status.access_secret_name is None
    assert w.td.creates == 0, "nothing provisioned"
    # The Warning is posted once, not on every retry.
    again = await w.step()
    assert again.events == []  # type: ignore[attr-defined]
    assert w.td.creates == 0
    # An operator restart does not turn the foreign Secret into ours.
    w.reconciler._intents.clear()
    await w.step()
    assert w.status.phase is VMStatus.ERROR
    assert w.td.creates == 0
    # Deleting the foreign Secret lets provisioning go ahead.
    del w.secrets.created["vm-access"]
    await w.until_running()
    assert w.td.creates == 1
    assert w.status.access_secret_name == "vm-access"


async def test_a_restart_during_the_secret_create_recovers() -> None:
    w = World()
    await w.step()  # intent recorded
    decided = w.status.model_copy(deep=True)
    await w.step()  # Secret created, instance created...
    assert w.secrets.calls == 1
    # ... but the process died before status was written: a new process resumes.
    w.status = decided
    w.reconciler._intents.clear()
    w.reconciler._sent.clear()
    out = await w.step()
    assert "AccessSecretRecovered" in [e.reason for e in out.events]  # type: ignore[attr-defined]
    await w.until_running()
    assert w.td.creates == 1


async def test_the_secret_is_created_once_and_recorded() -> None:
    w = World()
    await w.step()
    assert w.secrets.calls == 0
    assert w.status.access_key_id == "default"
    await w.step()
    assert w.secrets.calls == 1
    assert w.status.access_secret_name == "vm-access"
    calls = w.secrets.calls
    await w.until_running()
    assert w.secrets.calls == calls, "a recorded Secret is never created again"


async def test_rotation_new_vms_use_the_new_key_old_ones_keep_theirs() -> None:
    old = World()
    old.reconciler._keys = KeyRing("k1", {"k1": K1})
    await old.until_running()
    assert old.status.access_key_id == "k1"
    # Rotate: k2 active, k1 kept.
    ring = KeyRing("k2", {"k1": K1, "k2": K2})
    new = World()
    new.reconciler._keys = ring
    keys_sent: list[str] = []
    create = new.td.create

    async def recording_create(spec: CreateSpec) -> Instance:
        keys_sent.append(spec.ssh_public_key)
        return await create(spec)

    new.td.create = recording_create  # type: ignore[method-assign]
    await new.until_running()
    assert new.status.access_key_id == "k2"
    assert keys_sent == [derive_access(K2, UID).ssh_public_key]
    stored = new.secrets.created["vm-access"]
    assert stored.ssh_public_key == derive_access(K2, UID).ssh_public_key
    assert stored.heartbeat_token == derive_heartbeat_token(K2, UID)
    # The old VM's heartbeat still verifies with its recorded key...
    token_k1 = derive_access(K1, UID).heartbeat_token
    old_key = ring.key(old.status.access_key_id)
    assert old_key is not None
    assert verify_heartbeat_token(old_key, UID, token_k1)
    assert not verify_heartbeat_token(ring.active, UID, token_k1)
    # ... until k1 is removed.
    assert KeyRing("k2", {"k2": K2}).key("k1") is None


async def test_a_removed_key_blocks_a_vm_that_still_needs_it() -> None:
    w = World()
    w.reconciler._keys = KeyRing("k1", {"k1": K1})
    await w.step()  # Secret created with k1, placement chosen
    w.reconciler._keys = KeyRing("k2", {"k2": K2})
    await w.step()
    assert w.td.creates == 0
    assert _condition(w, "Ready") == ("False", "AccessKeyRemoved")


def test_the_cheap_token_is_the_secret_token() -> None:
    assert derive_heartbeat_token(MASTER, UID) == derive_access(MASTER, UID).heartbeat_token


def test_keyring_from_the_credentials_secret() -> None:
    assert keyring_from_secret({}) is None
    single = keyring_from_secret({"access-master-key": "a" * 32})
    assert single is not None
    assert single.active_id == "default"
    ring = keyring_from_secret(
        {
            "access-master-key": "a" * 32,
            "access-master-keys": json.dumps({"k2": "b" * 32}),
            "access-master-key-id": "k2",
        }
    )
    assert ring is not None
    assert ring.active_id == "k2"
    assert ring.key(None) == b"a" * 32, "VMs without a key id use the default key"
    assert ring.key("k2") == b"b" * 32
    only = keyring_from_secret({"access-master-keys": json.dumps({"k9": "c" * 32})})
    assert only is not None
    assert only.active_id == "k9"
    assert "b" * 32 not in repr(ring)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"access-master-key": "REPLACE_ME"}, "shorter than 32 bytes"),
        ({"access-master-keys": "not json"}, "JSON object"),
        ({"access-master-keys": "[1]"}, "JSON object"),
        ({"access-master-keys": json.dumps({"Bad_Id": "x" * 32})}, "key id 'Bad_Id'"),
        (
            {"access-master-keys": json.dumps({"a": "x" * 32, "b": "y" * 32})},
            "must name the active key",
        ),
        (
            {"access-master-key": "x" * 32, "access-master-key-id": "nope"},
            "'nope' is not one of",
        ),
    ],
)
def test_bad_key_rings_name_the_problem(data: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        keyring_from_secret(data)


class RefusingWolf:
    async def probe(self, host: str, port: int) -> WolfStatus | None:
        raise UnsafeAddressError(f"{host} is a private address")


async def test_a_refused_wolf_address_is_a_condition_not_running() -> None:
    w = World()
    w.reconciler._wolf = RefusingWolf()
    await w.step()
    out = await w.step()
    assert w.status.phase is VMStatus.CONFIGURING
    assert _condition(w, "EnvironmentReady") == ("False", "UnsafeWolfAddress")
    assert "UnsafeWolfAddress" in [e.reason for e in out.events]  # type: ignore[attr-defined]


async def test_a_vm_keeps_its_key_across_a_rotation_mid_provisioning() -> None:
    w = World()
    w.reconciler._keys = KeyRing("k1", {"k1": K1})
    await w.step()  # intent recorded with k1
    w.reconciler._keys = KeyRing("k2", {"k1": K1, "k2": K2})
    sent: list[str] = []
    create = w.td.create

    async def recording_create(spec: CreateSpec) -> Instance:
        sent.append(spec.ssh_public_key)
        return await create(spec)

    w.td.create = recording_create  # type: ignore[method-assign]
    await w.until_running()
    assert w.status.access_key_id == "k1"
    assert sent == [derive_access(K1, UID).ssh_public_key]
    assert w.secrets.created["vm-access"].heartbeat_token == derive_heartbeat_token(K1, UID)
