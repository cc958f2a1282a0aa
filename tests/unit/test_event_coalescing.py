"""Back-to-back Normal Events become one; Warnings stay separate."""

from gamevm.handlers.gamevm import coalesce_events, hold_events
from gamevm.models.enums import VMStatus
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


def test_progress_events_wait_for_the_vm_to_settle() -> None:
    chosen = [Event("Normal", "ProviderSelected", "tensordock us-central")]
    assert hold_events(VMStatus.CREATING, chosen)
    assert hold_events(VMStatus.CONFIGURING, chosen)
    assert not hold_events(VMStatus.RUNNING, chosen), "running tells the held story at once"
    assert not hold_events(VMStatus.ERROR, chosen)
    assert not hold_events(VMStatus.CREATING, [*chosen, Event("Warning", "ProviderFallback", "x")])
    assert not hold_events(VMStatus.CREATING, [])
