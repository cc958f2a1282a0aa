"""Back-to-back Normal Events become one; Warnings stay separate."""

from gamevm.handlers.gamevm import coalesce_events
from gamevm.services.reconcile import Event


def test_normal_events_merge_and_warnings_stay() -> None:
    events = [
        Event("Normal", "ProviderSelected", "tensordock us-central"),
        Event("Normal", "Running", "Wolf answers"),
        Event("Warning", "ProviderFallback", "sold out"),
        Event("Normal", "InstanceCreated", "i-2"),
    ]
    assert coalesce_events(events) == [
        Event("Normal", "Running", "tensordock us-central; Wolf answers"),
        Event("Warning", "ProviderFallback", "sold out"),
        Event("Normal", "InstanceCreated", "i-2"),
    ]
