"""gamevm.handlers.retention: what a held GameVM body loses, and what still wakes a daemon."""

from typing import Any

from gamevm.handlers.retention import LAST_APPLIED, acted_on_annotations, shed_unread_fields


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
