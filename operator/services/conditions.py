"""Condition bookkeeping: lastTransitionTime moves only when the status flips."""

from datetime import datetime

from gamevm.models.conditions import Condition, ConditionStatus, ConditionType


def set_condition(
    conditions: list[Condition],
    type_: ConditionType,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """A new list with `type_` set; other conditions untouched, order stable."""

    def condition(last_transition_time: datetime) -> Condition:
        return Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=last_transition_time,
            observed_generation=generation,
        )

    result: list[Condition] = []
    found = False
    for existing in conditions:
        if existing.type != type_:
            result.append(existing)
            continue
        found = True
        result.append(
            condition(existing.last_transition_time if existing.status == status else now)
        )
    if not found:
        result.append(condition(now))
    return result


def get_condition(conditions: list[Condition], type_: ConditionType) -> Condition | None:
    """The condition of that type, if any."""
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: ConditionType) -> bool:
    """Whether the condition exists with status True."""
    condition = get_condition(conditions, type_)
    return condition is not None and condition.status == "True"
