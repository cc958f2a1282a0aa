"""The mirror's queue: coalescing per key, never raising, without a server."""

from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from gamevm.mirror.errors import is_retryable
from gamevm.mirror.mapping import vm_document_from
from gamevm.mirror.repository import Mirror
from gamevm.models.documents import VMDocument
from gamevm.settings import Settings
from tests.fixtures.mongo import gamevm_body


def _vm(version: int, uid: str = "vm-1") -> VMDocument:
    document = vm_document_from(gamevm_body(uid, resource_version=version))
    assert document is not None
    return document


def _mirror() -> Mirror:
    # Nothing connects until start(): no server needed.
    return Mirror("mongodb://127.0.0.1:1/", "unit")


def test_latest_version_wins_per_key() -> None:
    mirror = _mirror()
    for version in (5, 9, 7):
        mirror.enqueue_vm(_vm(version))
    mirror.enqueue_vm(_vm(3, uid="vm-2"))
    assert mirror.stats.pending == 2
    pending = {key: change.version for key, change in mirror._pending.items()}
    assert pending == {("vm", "vm-1"): 9, ("vm", "vm-2"): 3}


def test_termination_beats_later_live_updates() -> None:
    mirror = _mirror()
    mirror.enqueue_vm(_vm(5))
    mirror.enqueue_vm_terminated(_vm(6))
    mirror.enqueue_vm(_vm(8))
    change = mirror._pending[("vm", "vm-1")]
    assert change.final
    assert change.version == 6


def test_enqueue_never_raises() -> None:
    mirror = _mirror()
    mirror.enqueue_vm(None)
    mirror.enqueue_vm_from({"metadata": {}})  # unmappable: logged and counted
    mirror.enqueue_config_from({"spec": {"consoleType": "nope"}})
    mirror.enqueue_vm_terminated_from({})
    assert mirror.stats.dropped == 3
    assert mirror.stats.pending == 0


def test_lag_counts_from_first_unsynced_change() -> None:
    mirror = _mirror()
    mirror.enqueue_vm(_vm(1))
    first = mirror._pending[("vm", "vm-1")].first_enqueued
    mirror.enqueue_vm(_vm(2))
    assert mirror._pending[("vm", "vm-1")].first_enqueued == first
    assert mirror.stats.lag_seconds >= 0


def test_from_settings_off_without_uri() -> None:
    assert Mirror.from_settings(Settings(mongodb_uri=None)) is None
    mirror = Mirror.from_settings(Settings(mongodb_uri="mongodb://127.0.0.1:1/"))
    assert isinstance(mirror, Mirror)


def test_retryable_errors() -> None:
    assert is_retryable(AutoReconnect("gone"))
    assert is_retryable(ServerSelectionTimeoutError("no server"))
    assert is_retryable(OperationFailure("shutting down", code=91))
    assert not is_retryable(OperationFailure("bad value", code=2))
    assert not is_retryable(DuplicateKeyError("dup", code=11000))
