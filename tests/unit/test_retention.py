"""gamevm.handlers.retention: what a held GameVM body loses, and what still wakes a daemon."""

import json
from typing import Any

from gamevm.handlers.retention import (
    LAST_APPLIED,
    acted_on_annotations,
    compact_held_body,
    shed_unread_fields,
)


def body() -> dict[str, Any]:
    return {
        "apiVersion": "gamevm.dev/v1alpha1",
        "kind": "GameVM",
        "metadata": {
            "name": "vm",
            "uid": "u-1",
            "annotations": {LAST_APPLIED: '{"spec": {}}', "gamevm.dev/power-request": "stop"},
            "managedFields": [{"manager": "kubectl", "time": "2026-01-01T00:00:00Z"}],
            "finalizers": ["gamevm.dev/finalizer"],
        },
        "spec": {"consoleType": "nes"},
        "status": {"phase": "running"},
    }


def test_sheds_managed_fields_and_last_applied_and_keeps_the_rest() -> None:
    raw = body()
    shed_unread_fields(raw)
    expected = body()
    del expected["metadata"]["managedFields"]
    del expected["metadata"]["annotations"][LAST_APPLIED]
    assert raw == expected


def test_a_body_without_them_is_left_as_it_is() -> None:
    raw: dict[str, Any] = {"metadata": {"name": "vm"}}
    shed_unread_fields(raw)
    assert raw == {"metadata": {"name": "vm"}}
    shed_unread_fields({})


def test_last_applied_is_not_an_annotation_the_daemon_acts_on() -> None:
    annotations = body()["metadata"]["annotations"]
    assert acted_on_annotations(annotations) == (("gamevm.dev/power-request", "stop"),)
    # Held bodies lose it: with or without it, the daemon sees the same annotations.
    del annotations[LAST_APPLIED]
    assert acted_on_annotations(annotations) == (("gamevm.dev/power-request", "stop"),)


def test_compacted_bodies_share_their_keys_and_short_values() -> None:
    first, second = json.loads(json.dumps(body())), json.loads(json.dumps(body()))
    # Decoded apart, equal strings are separate objects (what kopf holds per event).
    assert next(iter(first["status"])) is not next(iter(second["status"]))
    held_spec = first["spec"]
    compact_held_body(first)
    compact_held_body(second)
    assert first == second
    assert first["spec"] is held_spec, "the same dicts, compacted in place (kopf's views)"
    assert list(first["metadata"]) == ["name", "uid", "annotations", "finalizers"]
    for one, other in ((first, second), (first["status"], second["status"])):
        for key_one, key_other in zip(one, other, strict=True):
            assert key_one is key_other
    assert first["status"]["phase"] is second["status"]["phase"]
    assert "managedFields" not in first["metadata"]
