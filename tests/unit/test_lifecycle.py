"""Deadlines, admin policy, the cost guard and condition recovery, step by step.

Each test names the behaviour it protects; the fakes are the ones of test_reconcile.
"""

from dataclasses import replace
from datetime import timedelta

import pytest

from gamevm.models import CloudProvider, GameVMSpec, RunStrategy, VMStatus
from gamevm.models.conditions import ConditionType
from gamevm.models.enums import DeletionPolicy
from gamevm.models.gamevm import GameVMStatus
from gamevm.models.names import ANNOTATION_LAST_ACTIVITY, ANNOTATION_POWER_REQUEST
from gamevm.models.reasons import Reason
from gamevm.providers.base import ErrorReason, InstanceState, ProviderError
from gamevm.providers.wolf import WolfStatus
from gamevm.services.conditions import get_condition
from gamevm.services.deletion import release
from gamevm.services.lifecycle import TRANSITIONS, enter
from gamevm.services.power import auto_stop_verdict
from gamevm.services.reconcile import WOLF_MISSES_BEFORE_CONFIGURING, Timings
from tests.unit.test_reconcile import CONFIG, T0, World, _offer


def _cond(w: World, type_: ConditionType) -> tuple[str, str]:
    condition = get_condition(w.status.conditions, type_)
    assert condition is not None, f"no {type_} condition: {w.status.conditions}"
    return condition.status, condition.reason


def _config(**changes: object) -> object:
    return CONFIG.model_copy(update=changes)


# -- the lifecycle table ----------------------------------------------------------------


def test_every_reason_has_one_transition() -> None:
    assert set(TRANSITIONS) == set(Reason)


def test_enter_sets_observed_generation_and_its_conditions_together() -> None:
    st = GameVMStatus()
    event = enter(st, Reason.PROVISIONING_TIMEOUT, "too slow", now=T0, generation=7)
    assert (st.phase, st.stop_reason, st.observed_generation) == (
        VMStatus.ERROR,
        "ProvisioningTimeout",
        7,
    )
    assert event is not None
    assert (event.type, event.reason) == ("Warning", "ProvisioningTimeout")
    assert {c.type for c in st.conditions} >= {"Ready", "AutoStopped"}
    assert all(c.observed_generation == 7 for c in st.conditions)


# -- configuring and Wolf silence ---------------------------------------------------------


async def test_wolf_silence_is_configuring_not_running() -> None:
    w = World()
    w.wolf.status = None
    await w.step()
    await w.step()
    assert w.status.provider_instance_id == "i-1"
    assert w.status.phase is VMStatus.CONFIGURING
    assert w.status.gaming_environment_ready is False
    assert _cond(w, ConditionType.ENVIRONMENT_READY) == ("False", "WolfNotAnswering")
    assert _cond(w, ConditionType.READY)[0] == "False"


async def _until_wolf_counts_as_silent(w: World) -> None:
    for _ in range(WOLF_MISSES_BEFORE_CONFIGURING - 1):
        await w.step()
        assert w.status.phase is VMStatus.RUNNING
    await w.step()
    assert w.status.phase is VMStatus.CONFIGURING


async def test_a_missed_probe_does_not_change_a_running_vm() -> None:
    """One probe lost (a loaded operator or network) rewrites nothing; a silent Wolf does."""
    w = World()
    await w.until_running()
    running = w.status.model_dump()
    w.wolf.status = None
    out = await w.step()
    assert w.status.model_dump() == running, "status unchanged: nothing to write"
    assert out.events == []
    assert out.requeue_after <= Timings().observe, "looked at again soon"
    w.wolf.status = WolfStatus(busy=False, state="SUNSHINE_SERVER_FREE")
    await w.step()
    assert w.status.model_dump() == running
    assert w.wolf_misses == 0, "an answer resets the count"
    w.wolf.status = None
    await _until_wolf_counts_as_silent(w)
    assert _cond(w, ConditionType.ENVIRONMENT_READY) == ("False", "WolfNotAnswering")


async def test_observed_generation_is_written_on_every_step() -> None:
    w = World()
    w.generation = 3
    await w.step()
    assert w.status.observed_generation == 3
    w.generation = 4
    w.config = None  # a blocked step writes it too
    w.status = GameVMStatus()
    await w.step()
    assert w.status.observed_generation == 4


# -- every billing state has a deadline ------------------------------------------------


async def test_provisioning_deadline_stops_a_vm_whose_wolf_never_answers() -> None:
    w = World()
    w.config = _config(max_provisioning_minutes=10)
    w.wolf.status = None
    await w.step()
    await w.step()
    assert w.status.phase is VMStatus.CONFIGURING
    w.now = T0 + timedelta(minutes=9)
    await w.step()
    assert w.status.phase is VMStatus.CONFIGURING
    w.now = T0 + timedelta(minutes=10, seconds=1)
    out = await w.step()
    assert w.status.phase is VMStatus.ERROR
    assert w.status.stop_reason == "ProvisioningTimeout"
    assert w.td.instances["i-1"].state is InstanceState.STOPPED, "the instance no longer bills"
    assert out.provisioning_timed_out
    assert any(e.type == "Warning" and e.reason == "ProvisioningTimeout" for e in out.events)
    # Held: not restarted on the next steps, even by Always.
    w.spec = w.spec.model_copy(update={"run_strategy": RunStrategy.ALWAYS})
    w.now += timedelta(minutes=5)
    await w.step()
    assert w.td.instances["i-1"].state is InstanceState.STOPPED
    assert w.status.phase is VMStatus.ERROR
    # Until someone asks: a fresh attempt with a fresh deadline.
    w.annotations[ANNOTATION_POWER_REQUEST] = "start"
    w.wolf.status = WolfStatus(busy=False, state="SUNSHINE_SERVER_FREE")
    await w.until_running()
    assert w.td.creates == 1


async def test_provisioning_deadline_while_creating_sends_no_more_creates() -> None:
    w = World()
    w.config = _config(max_provisioning_minutes=5)
    await w.step()  # choice recorded
    w.td.fail_create = ProviderError(ErrorReason.SERVER_ERROR, "503", retryable=True)
    await w.step()
    assert w.status.phase is VMStatus.CREATING
    w.now = T0 + timedelta(minutes=6)
    await w.step()
    assert (w.status.phase, w.status.stop_reason) == (VMStatus.ERROR, "ProvisioningTimeout")
    w.td.fail_create = None
    w.now += timedelta(minutes=1)
    await w.step()
    assert w.td.creates == 0


async def test_session_cap_applies_while_configuring() -> None:
    w = World()
    w.config = _config(max_provisioning_minutes=24 * 60)
    await w.until_running()
    w.wolf.status = None  # Wolf goes silent under the player
    w.now = T0 + timedelta(minutes=1)
    await _until_wolf_counts_as_silent(w)
    w.now = T0 + timedelta(hours=4, seconds=1)
    await w.step()
    assert (w.status.phase, w.status.stop_reason) == (VMStatus.STOPPED, "MaxSessionExceeded")
    assert w.td.instances["i-1"].state is InstanceState.STOPPED


async def test_idle_applies_while_configuring() -> None:
    w = World()
    w.config = _config(max_provisioning_minutes=24 * 60)
    await w.until_running()
    w.wolf.status = None
    w.now = T0 + timedelta(minutes=1)
    await _until_wolf_counts_as_silent(w)
    # While provisioning, idleness stops past both autoStopTimeout and the deadline.
    w.now = T0 + timedelta(hours=24, seconds=1)
    w.config = _config(max_provisioning_minutes=24 * 60, max_session_hours=720)
    await w.step()
    assert (w.status.phase, w.status.stop_reason) in {
        (VMStatus.STOPPED, "Idle"),
        (VMStatus.ERROR, "ProvisioningTimeout"),
    }
    assert w.td.instances["i-1"].state is InstanceState.STOPPED


# -- the admin's EmulatorConfig bounds the user's GameVM --------------------------------


async def test_always_stops_at_the_admin_session_cap_and_stays_stopped() -> None:
    w = World()
    w.spec = w.spec.model_copy(update={"run_strategy": RunStrategy.ALWAYS})
    await w.until_running()
    w.wolf.status = WolfStatus(busy=True, state="SUNSHINE_SERVER_BUSY")
    w.now = T0 + timedelta(hours=4, seconds=1)
    out = await w.step()
    assert (w.status.phase, w.status.stop_reason) == (VMStatus.STOPPED, "MaxSessionExceeded")
    assert out.auto_stopped == "MaxSessionExceeded"
    w.now += timedelta(minutes=10)
    await w.step()
    assert w.status.phase is VMStatus.STOPPED, "Always does not power a capped VM back on"
    assert w.td.instances["i-1"].state is InstanceState.STOPPED


async def test_always_exempt_from_the_session_cap_when_the_admin_says_so() -> None:
    w = World()
    w.config = _config(max_session_applies_to_always=False)
    w.spec = w.spec.model_copy(update={"run_strategy": RunStrategy.ALWAYS})
    await w.until_running()
    w.now = T0 + timedelta(days=2)
    await w.step()
    assert w.status.phase is VMStatus.RUNNING


@pytest.mark.parametrize(
    ("field", "value", "config_field", "reason"),
    [
        ("run_strategy", RunStrategy.ALWAYS, "allow_always_run_strategy", "RunStrategyNotAllowed"),
        (
            "deletion_policy",
            DeletionPolicy.ORPHAN,
            "allow_orphan_deletion_policy",
            "DeletionPolicyNotAllowed",
        ),
    ],
)
async def test_what_the_config_forbids_is_not_provisioned(
    field: str, value: object, config_field: str, reason: str
) -> None:
    w = World()
    w.config = _config(**{config_field: False})
    w.spec = w.spec.model_copy(update={field: value})
    first = await w.step()
    for _ in range(3):
        later = await w.step()
        assert not [e for e in later.events if e.reason == reason], "warned once, not per step"
    assert w.td.creates == 0
    assert w.status.decision is None
    assert _cond(w, ConditionType.ADMITTED) == ("False", reason)
    assert w.status.phase is VMStatus.ERROR
    assert first.policy_denied == reason
    assert any(e.type == "Warning" and e.reason == reason for e in first.events)
    w.config = _config(**{config_field: True})
    await w.until_running()
    assert _cond(w, ConditionType.ADMITTED) == ("True", "PolicyAllowed")


def test_orphan_is_not_the_default() -> None:
    assert CONFIG.allow_orphan_deletion_policy is False


async def test_future_last_activity_annotation_is_ignored() -> None:
    w = World()
    await w.until_running()
    w.annotations[ANNOTATION_LAST_ACTIVITY] = "2099-01-01T00:00:00Z"
    w.now = T0 + timedelta(seconds=600)
    await w.step()
    assert w.status.last_activity is not None
    assert w.status.last_activity <= w.now
    w.now = T0 + timedelta(seconds=901)
    await w.step()
    assert (w.status.phase, w.status.stop_reason) == (VMStatus.STOPPED, "Idle")


def test_idle_seconds_are_never_negative() -> None:
    verdict = auto_stop_verdict(
        now=T0,
        started_at=T0 + timedelta(hours=1),
        last_activity=T0 + timedelta(days=1),
        auto_stop_timeout=900,
        max_session_hours=None,
    )
    assert verdict.idle_seconds == 0
    assert verdict.session_seconds == 0


async def test_heartbeat_resets_the_idle_clock() -> None:
    w = World()
    await w.until_running()
    w.now = T0 + timedelta(seconds=800)
    await w.step(heartbeat=w.now)
    w.now = T0 + timedelta(seconds=1600)
    await w.step()
    assert w.status.phase is VMStatus.RUNNING, "the heartbeat at 800 s keeps it 900 s more"
    w.now = T0 + timedelta(seconds=1701)
    await w.step()
    assert w.status.phase is VMStatus.STOPPED


# -- the cost cap at create time -------------------------------------------------------


async def test_no_create_above_the_cost_cap_whatever_offer_is_handed_over() -> None:
    w = World()
    w.config = _config(cost_per_hour_limit=0.50)
    expensive = replace(_offer(), price_per_hour=1.50)
    w.selector.offers = [expensive]  # a cached offer of another VM, or a price rise
    await w.step()
    out = await w.step()
    assert w.td.creates == 0
    assert out.cost_guard_refused
    assert any(e.reason == "ProviderFallback" and "OverCostLimit" in e.message for e in out.events)


async def test_no_create_of_an_offer_below_the_preset() -> None:
    w = World()
    small = replace(_offer(), vcpu=2, ram_gb=4)
    w.selector.offers = [small]
    await w.step()
    await w.step()
    assert w.td.creates == 0


# -- conditions recover ------------------------------------------------------------------


async def test_synced_recovers_after_a_provider_outage() -> None:
    w = World()
    await w.until_running()
    assert _cond(w, ConditionType.SYNCED) == ("True", "ReconcileSucceeded")
    original = w.td.observe

    async def down(instance_id: str, **_: object) -> None:
        raise ProviderError(ErrorReason.SERVER_ERROR, "503", retryable=True)

    w.td.observe = down  # type: ignore[method-assign,assignment]
    await w.step()
    assert _cond(w, ConditionType.SYNCED) == ("False", "ServerError")
    w.td.observe = original  # type: ignore[method-assign]
    await w.step()
    assert _cond(w, ConditionType.SYNCED) == ("True", "ReconcileSucceeded")


async def test_synced_recovers_after_a_pause() -> None:
    w = World()
    await w.until_running()
    enter(w.status, Reason.PAUSED, "paused", now=w.now, generation=1)
    assert _cond(w, ConditionType.SYNCED) == ("False", "ReconcilePaused")
    await w.step()  # the first step after the annotation is gone
    assert _cond(w, ConditionType.SYNCED) == ("True", "ReconcileSucceeded")


# -- deletion ------------------------------------------------------------------------------


async def test_forbidden_orphan_is_deleted_and_allowed_orphan_is_left() -> None:
    w = World()
    await w.until_running()
    providers = {CloudProvider.TENSORDOCK: w.td, CloudProvider.CLOUDYPAD_GCP: w.gcp}
    kwargs = {
        "uid": "0b9e7c1a-1111-2222-3333-444455556666",
        "status": w.status,
        "retry": 0,
        "retry_delay": 1.0,
        "observe_interval": 1.0,
    }
    allowed = await release(
        providers,
        policy=DeletionPolicy.ORPHAN,
        config=_config(allow_orphan_deletion_policy=True),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )
    assert allowed.done
    assert allowed.orphaned
    assert "i-1" in w.td.instances
    forbidden = await release(
        providers,
        policy=DeletionPolicy.ORPHAN,
        config=CONFIG,
        **kwargs,  # type: ignore[arg-type]
    )
    assert forbidden.done
    assert not forbidden.orphaned
    assert "i-1" not in w.td.instances
    assert [e.reason for e in forbidden.events] == ["OrphanNotAllowed", "InstanceDeleted"]


def test_spec_is_never_in_the_outcome() -> None:
    """The reconcile returns a status only: nothing it computes can reach spec."""
    assert "spec" not in GameVMStatus.model_fields
    assert not set(GameVMSpec.model_fields) & {"phase", "conditions"}


def test_provisioning_timeouts_are_counted() -> None:
    from gamevm import metrics

    def value() -> float:
        sample = metrics.REGISTRY.get_sample_value(
            "gamevm_provisioning_timeouts_total", {"provider": "tensordock"}
        )
        return sample or 0.0

    before = value()
    metrics.count_provisioning_timeout(CloudProvider.TENSORDOCK)
    assert value() == before + 1


async def test_no_access_key_blocks_in_the_service_and_creates_nothing() -> None:
    w = World()
    w.reconciler._keys = None  # as built without a usable key in the Secret
    out = await w.step()
    assert w.td.creates == 0
    assert w.status.phase is VMStatus.ERROR
    assert _cond(w, ConditionType.READY) == ("False", "AccessKeyMissing")
    assert [e.reason for e in out.events] == ["AccessKeyMissing"]
    assert w.status.observed_generation == 1
    again = await w.step()
    assert again.events == [], "told once"


def test_invalid_spec_is_a_blocked_outcome_that_keeps_the_instance() -> None:
    w = World()
    w.status = GameVMStatus(provider_instance_id="i-9", phase=VMStatus.RUNNING)
    from gamevm.services.ports import VMRef

    out = w.reconciler.blocked(
        VMRef("ns", "vm", "uid", 5), w.status, Reason.INVALID_SPEC, "spec.x: bad", T0
    )
    assert out.status.phase is VMStatus.RUNNING, "a block never hides a live instance"
    assert out.status.observed_generation == 5
    assert [e.reason for e in out.events] == ["InvalidSpec"]
