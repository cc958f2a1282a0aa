"""Condition bookkeeping: lastTransitionTime moves only when the status flips."""

from datetime import UTC, datetime, timedelta

from gamevm.models.conditions import ConditionType
from gamevm.services.conditions import get_condition, set_condition

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_last_transition_time_moves_only_when_the_status_flips() -> None:
    conditions = set_condition(
        [], ConditionType.SYNCED, "True", "Reconciled", "ok", now=T0, generation=1
    )
    conditions = set_condition(
        conditions, ConditionType.READY, "False", "Creating", "a", now=T0, generation=1
    )
    later = T0 + timedelta(minutes=1)
    conditions = set_condition(
        conditions, ConditionType.READY, "False", "Configuring", "b", now=later, generation=2
    )
    ready = get_condition(conditions, ConditionType.READY)
    assert ready is not None
    assert (ready.reason, ready.message, ready.observed_generation) == ("Configuring", "b", 2)
    assert ready.last_transition_time == T0
    flipped = T0 + timedelta(minutes=2)
    conditions = set_condition(
        conditions, ConditionType.READY, "True", "Running", "c", now=flipped, generation=2
    )
    ready = get_condition(conditions, ConditionType.READY)
    assert ready is not None
    assert ready.last_transition_time == flipped
    assert [c.type for c in conditions] == [ConditionType.SYNCED, ConditionType.READY]
    synced = get_condition(conditions, ConditionType.SYNCED)
    assert synced is not None
    assert synced.last_transition_time == T0
