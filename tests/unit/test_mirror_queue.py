"""The mirror's queue: coalescing per key, never raising, without a server."""

import asyncio

from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from gamevm.mirror.changes import Change, KeyLocks
from gamevm.mirror.errors import is_retryable
from gamevm.mirror.mapping import vm_document_from
from gamevm.mirror.ordering import DeliveryClock
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


def _pending(mirror: Mirror) -> dict[tuple[str, str], Change]:
    return mirror._queue.pending


def test_latest_delivery_wins_per_key() -> None:
    """Order is the watch's: the change handed over last wins, whatever its resourceVersion
    (opaque: resourceVersion "7" after "9" is simply the later event)."""
    mirror = _mirror()
    for version in (5, 9, 7):
        mirror.enqueue_vm(_vm(version))
    mirror.enqueue_vm(_vm(3, uid="vm-2"))
    assert mirror.stats.pending == 2
    pending = {key: change.document.source_version for key, change in _pending(mirror).items()}
    assert pending == {("vm", "vm-1"): "7", ("vm", "vm-2"): "3"}


def test_stamps_strictly_increase() -> None:
    clock = DeliveryClock()
    stamps = [clock.stamp() for _ in range(1000)]
    assert stamps == sorted(set(stamps))


def test_resource_version_is_never_parsed() -> None:
    """A resourceVersion that is no integer maps fine (Kubernetes promises no format)."""
    document = vm_document_from(gamevm_body("vm-x", resource_version="v2:abc/17"))
    assert document is not None
    assert document.source_version == "v2:abc/17"


def test_termination_beats_later_live_updates() -> None:
    mirror = _mirror()
    mirror.enqueue_vm(_vm(5))
    mirror.enqueue_vm_terminated(_vm(6))
    mirror.enqueue_vm(_vm(8))
    change = _pending(mirror)[("vm", "vm-1")]
    assert change.final
    assert change.document is not None
    assert change.document.source_version == "6"


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
    first = _pending(mirror)[("vm", "vm-1")].first_enqueued
    mirror.enqueue_vm(_vm(2))
    assert _pending(mirror)[("vm", "vm-1")].first_enqueued == first
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


async def test_key_locks_serialise_one_key_and_are_freed() -> None:
    locks = KeyLocks()
    order: list[str] = []

    async def hold(name: str, key: tuple[str, str]) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(hold("a", ("vm", "1")), hold("b", ("vm", "1")), hold("c", ("vm", "2")))
    assert order.index("a-") < order.index("b+")  # same key: one at a time
    assert order.index("c+") < order.index("a-")  # other keys: in parallel
    assert len(locks) == 0  # no lock kept per key once nobody holds it
