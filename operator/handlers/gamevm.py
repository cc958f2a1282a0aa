"""GameVM handlers: one daemon per object drives it; deletion releases the instance.

A daemon (not create/update handlers) keeps API writes low: kopf stores no progress or
diff-base annotations for it, and the daemon writes status only when something changed.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from gamevm import metrics
from gamevm.handlers.context import AppContext, VMRuntime
from gamevm.handlers.emulatorconfig import ConfigIndex, config_for
from gamevm.handlers.errors import describe_validation_error
from gamevm.handlers.kube import KubeError
from gamevm.handlers.patching import merge_patch
from gamevm.handlers.retention import acted_on_annotations, compact_held_body
from gamevm.models.conditions import ConditionType
from gamevm.models.enums import CloudProvider, DeletionPolicy, VMStatus
from gamevm.models.gamevm import GameVMSpec, GameVMStatus
from gamevm.models.names import (
    ANNOTATION_PAUSED,
    ANNOTATION_POWER_REQUEST,
    GAMEVM_PLURAL,
    GROUP,
    VERSION,
)
from gamevm.models.reasons import Reason
from gamevm.providers.budget import BudgetedProvider
from gamevm.services.conditions import get_condition
from gamevm.services.deletion import release
from gamevm.services.lifecycle import Event, enter
from gamevm.services.ports import VMRef
from gamevm.services.reconcile import Outcome, StepInput, known_instance

log = logging.getLogger(__name__)


def _mine(meta: kopf.Meta, memo: kopf.Memo) -> bool:
    """This replica's shard owns the GameVM (GAMEVM_SHARD; every VM when unset)."""
    app: AppContext | None = memo.get("app")
    shard = app.shard if app is not None else None
    return shard is None or shard.owns(str(meta.get("uid", "")))


def _not_paused(annotations: kopf.Annotations, meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> bool:
    return annotations.get(ANNOTATION_PAUSED, "").lower() != "true" and _mine(meta, memo)


def _paused(annotations: kopf.Annotations, meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> bool:
    return annotations.get(ANNOTATION_PAUSED, "").lower() == "true" and _mine(meta, memo)


def _raw(view: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    """The field's own dict under a kopf view (one lookup), or an empty one."""
    value = view.get(field)
    return value if isinstance(value, dict) else {}


def _seen(meta: kopf.Meta) -> tuple[Any, ...]:
    """What a user changes to make the daemon act: generation and annotations."""
    return (meta.get("generation"), acted_on_annotations(_raw(meta, "annotations")))


def _now() -> datetime:
    return datetime.now(UTC)


def _app(memo: kopf.Memo) -> AppContext:
    app: AppContext = memo.app
    return app


@kopf.daemon(
    GROUP,
    VERSION,
    GAMEVM_PLURAL,
    id="reconcile",
    when=_not_paused,
    cancellation_timeout=5.0,
    # Failures are handled inside the loop; this only bounds an unexpected crash's restart.
    backoff=5.0,
)
async def reconcile_gamevm(
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """Reconcile one GameVM until it is deleted or paused."""
    # kopf passes each index as a kwarg named after its function (not in DaemonFn's type).
    configs: ConfigIndex = kwargs["emulatorconfigs_by_console"]
    app = _app(memo)
    uid = str(meta["uid"])
    runtime = app.runtime(uid)
    runtime.console = str(spec.get("consoleType", ""))
    runtime.seen = _seen(meta)
    app.uids[f"{meta['namespace']}/{meta['name']}"] = uid
    _seed_budget(app, status)
    runtime.daemon_alive = True
    try:
        await _steps(app, runtime, body, meta, configs)
    finally:
        runtime.daemon_alive = False


async def _steps(
    app: AppContext,
    runtime: VMRuntime,
    body: kopf.Body,
    meta: kopf.Meta,
    configs: ConfigIndex,
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        if meta.get("deletionTimestamp"):
            return
        # Cleared before the step: a wake-up that arrives during the step is not lost.
        runtime.wake.clear()
        status = runtime.status if runtime.status is not None else _raw(body, "status")
        budget = _creating_at(app, status)
        if budget is None:
            delay = await _one_step(app, runtime, body, meta, configs)
        else:
            # Queued for the provider's create turn before the step builds anything.
            async with budget.create_turn(str(meta["namespace"])):
                delay = await _one_step(app, runtime, body, meta, configs)
        next_step = loop.time() + delay
        while not runtime.wake.is_set() and loop.time() < next_step:
            until = next_step if runtime.hold_until is None else min(next_step, runtime.hold_until)
            await _sleep_until_woken(runtime.wake, max(0.0, until - loop.time()))
            if runtime.hold_until is not None and loop.time() >= runtime.hold_until:
                await _flush_held_status(app, runtime, meta)


def _creating_at(app: AppContext, status: Mapping[str, Any]) -> BudgetedProvider | None:
    """The provider budget whose create the VM's next step sends, as its status says: a
    provider chosen, no instance yet, creating."""
    if status.get("phase") != VMStatus.CREATING.value:
        return None
    if status.get("providerInstanceId"):
        return None
    decision = status.get("decision")
    chosen = decision.get("chosenProvider") if isinstance(decision, Mapping) else None
    try:
        return app.budgets.get(CloudProvider(chosen)) if chosen else None
    except ValueError:
        return None


async def _sleep_until_woken(wake: asyncio.Event, delay: float) -> None:
    """Sleep `delay` seconds or until `wake` is set, whichever comes first (a timeout
    leaves `wake` unset).

    `asyncio.timeout` reschedules this task's own deadline, where `asyncio.wait_for` would
    add a task per sleep: ~40 us and ~1 KB less per sleeping VM, thousands of which sleep
    at once (bench/README.md, idle CPU).
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):
            await wake.wait()


STATUS_KEYS = frozenset(field.alias or name for name, field in GameVMStatus.model_fields.items())


def stored_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """The object's status as plain JSON data, only the fields this operator writes (a
    patch never nulls anything else)."""
    data: dict[str, Any] = json.loads(json.dumps(dict(status), default=str))
    return {k: v for k, v in data.items() if k in STATUS_KEYS}


def _seed_budget(app: AppContext, status: kopf.Status) -> None:
    """Tell the provider budget what status knows of a running VM (after a restart)."""
    try:
        current = GameVMStatus.model_validate(dict(status))
    except ValidationError:
        return
    known = known_instance(current)
    if known is not None and current.provider in app.budgets:
        app.budgets[current.provider].seed(known)


async def _one_step(
    app: AppContext,
    runtime: VMRuntime,
    body: kopf.Body,
    meta: kopf.Meta,
    configs: ConfigIndex,
) -> float:
    ref = VMRef(
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        uid=str(meta["uid"]),
        generation=meta.get("generation"),
    )
    if runtime.status is not None:
        status_model = GameVMStatus.model_validate(runtime.status)
    else:
        # The raw dict under kopf's view: `dict(view)` resolves every key from the body's
        # root (bench/README.md, profile).
        raw_status = _raw(body, "status")
        status_model = GameVMStatus.model_validate(dict(raw_status))
        # What the object holds: after a restart (or a pause) the first step writes only
        # what changed, not every VM's whole status.
        runtime.written_status = runtime.status = stored_status(raw_status)
    runtime.access_key_id = status_model.access_key_id
    try:
        spec_model: GameVMSpec | None = GameVMSpec.model_validate(_raw(body, "spec"))
    except ValidationError as exc:
        spec_model = None
        problem = describe_validation_error(exc)
    try:
        if spec_model is None:
            outcome = app.reconciler.blocked(
                ref, status_model, Reason.INVALID_SPEC, problem, _now()
            )
        else:
            outcome = await app.reconciler.step(
                StepInput(
                    ref=ref,
                    spec=spec_model,
                    status=status_model,
                    annotations=dict(_raw(meta, "annotations")),
                    config=config_for(configs, spec_model.console_type.value),
                    now=_now(),
                    heartbeat=runtime.heartbeat,
                    retries=runtime.retries,
                    configuration=runtime.configuration,
                    wolf_misses=runtime.wolf_misses,
                )
            )
        await _apply(app, runtime, body, ref, spec_model, outcome)
    except KubeError as exc:
        # E.g. the namespace is terminating, or the API server is restarting: retry later.
        runtime.retries += 1
        delay = min(300.0, app.settings.retry_delay * float(2 ** min(runtime.retries, 5)))
        log.warning("%s: Kubernetes API error (%s); retrying in %.0f s", ref.key, exc, delay)
        return delay
    return outcome.requeue_after


async def _apply(
    app: AppContext,
    runtime: VMRuntime,
    body: kopf.Body,
    ref: VMRef,
    spec: GameVMSpec | None,
    outcome: Outcome,
) -> None:
    runtime.status = outcome.status.model_dump(mode="json", exclude_none=True)
    hold = app.settings.status_hold_seconds
    # A held write goes on waiting (up to its deadline) while the VM is still configuring.
    still_configuring = (
        runtime.hold_until is not None
        and outcome.status.phase is VMStatus.CONFIGURING
        and all(e.type == "Normal" for e in outcome.events)
    )
    may_hold = outcome.may_hold_write or still_configuring
    now = asyncio.get_running_loop().time()
    if runtime.hold_until is not None and now >= runtime.hold_until:
        may_hold = False
    if may_hold and hold > 0 and not _waited_reports(runtime, runtime.status):
        if runtime.hold_until is None:
            runtime.hold_until = now + hold
    else:
        await _write_status(app, runtime, ref)
    events = [*runtime.held_events, *outcome.events]
    runtime.held_events = []
    if hold_events(outcome.status.phase, events):
        runtime.held_events = events
    else:
        _post(body, events)
    if outcome.consume_power_request:
        await app.kube.patch_gamevm_annotations(
            ref.namespace, ref.name, {ANNOTATION_POWER_REQUEST: None}
        )
    runtime.retries = runtime.retries + 1 if outcome.retryable_failure else 0
    runtime.wolf_misses = outcome.wolf_misses
    st = outcome.status
    runtime.access_key_id = st.access_key_id
    metrics.track_vm(
        ref.uid,
        phase=st.phase,
        provider=st.provider,
        console=spec.console_type if spec else None,
        cost_per_hour=st.cost_per_hour,
    )
    if outcome.auto_stopped is not None:
        metrics.count_autostop(outcome.auto_stopped)
    if outcome.provisioning_timed_out:
        metrics.count_provisioning_timeout(st.provider)
    if outcome.policy_denied is not None:
        metrics.count_policy_denial(outcome.policy_denied)
    if outcome.cost_guard_refused:
        metrics.count_cost_guard_refusal(st.provider)
    if outcome.provisioned_seconds is not None and st.provider is not None:
        metrics.observe_provisioning(st.provider, outcome.provisioned_seconds)


async def _write_status(app: AppContext, runtime: VMRuntime, ref: VMRef) -> None:
    """Patch what changed since the last write (nothing: no request)."""
    new_status = runtime.status
    if new_status is None:
        return
    runtime.hold_until = None
    patch = merge_patch(runtime.written_status, new_status)
    if patch:
        await app.kube.patch_gamevm_status(ref.namespace, ref.name, patch)
    # Equal to what the API server has: one dict for both, not two equal copies (~8 KB
    # of Python objects per running VM; bench/README.md, memory).
    runtime.written_status = new_status
    _settle_report_waiters(runtime, new_status)


async def _flush_held_status(app: AppContext, runtime: VMRuntime, meta: kopf.Meta) -> None:
    ref = VMRef(namespace=str(meta["namespace"]), name=str(meta["name"]), uid=str(meta["uid"]))
    try:
        await _write_status(app, runtime, ref)
    except KubeError as exc:
        # Still ahead of written_status: the next step writes it.
        log.warning("%s: held status not written (%s); the next step writes it", ref.key, exc)


def _waited_reports(
    runtime: VMRuntime, status: dict[str, Any]
) -> list[tuple[datetime, "asyncio.Future[None]"]]:
    """The reports the configuration endpoint waits for that this status holds."""
    stored = (status.get("configuration") or {}).get("reportedAt")
    if not stored or not runtime.report_waiters:
        return []
    at = datetime.fromisoformat(stored.replace("Z", "+00:00"))
    return [(received, f) for received, f in runtime.report_waiters if received <= at]


def _settle_report_waiters(runtime: VMRuntime, written: dict[str, Any]) -> None:
    """Tell the configuration endpoint which of its reports are now in status."""
    for entry in _waited_reports(runtime, written):
        runtime.report_waiters.remove(entry)
        if not entry[1].done():
            entry[1].set_result(None)


@kopf.on.event(GROUP, VERSION, GAMEVM_PLURAL)
async def gamevm_event(
    event: kopf.RawEvent,
    body: kopf.Body,
    meta: kopf.Meta,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Wake the VM's daemon when a user changed something, and mirror the object."""
    app = _app(memo)
    uid = str(meta.get("uid", ""))
    if event.get("type") == "DELETED":
        app.runtimes.pop(uid, None)
        app.uids.pop(f"{meta.get('namespace')}/{meta.get('name')}", None)
        metrics.forget_vm(uid)
        if app.mirror is not None:
            app.mirror.enqueue_vm_terminated_from(body)
        return
    runtime = app.runtimes.get(uid)
    if runtime is not None:
        # Our own status writes change neither generation nor annotations: waking on them
        # would turn every write into another step.
        seen = _seen(meta)
        if seen != runtime.seen:
            runtime.seen = seen
            runtime.wake.set()
    if app.mirror is not None:
        app.mirror.enqueue_vm_from(body)
    # kopf holds this very dict until the next event: not the parts nobody reads again,
    # one copy of each repeated string.
    compact_held_body(event["object"])  # type: ignore[arg-type]


@kopf.on.event(GROUP, VERSION, GAMEVM_PLURAL, when=_paused)
async def gamevm_paused(
    body: kopf.Body,
    meta: kopf.Meta,
    status: kopf.Status,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Report the pause once: Synced=False, reason ReconcilePaused (Synced recovers on the
    first step after the annotation is removed)."""
    st = GameVMStatus.model_validate(dict(status))
    synced = get_condition(st.conditions, ConditionType.SYNCED)
    if synced is not None and synced.reason == Reason.PAUSED.value:
        return
    app = _app(memo)
    event = enter(
        st,
        Reason.PAUSED,
        f"{ANNOTATION_PAUSED}=true: the operator does not act on this GameVM",
        now=_now(),
        generation=meta.get("generation"),
    )
    await app.kube.patch_gamevm_status(
        str(meta["namespace"]),
        str(meta["name"]),
        {
            "conditions": [c.model_dump(mode="json", exclude_none=True) for c in st.conditions],
            "observedGeneration": st.observed_generation,
        },
    )
    runtime = app.runtimes.get(str(meta["uid"]))
    if runtime is not None:
        runtime.written_status = runtime.status = runtime.hold_until = None
    if event is not None:
        _post(body, [event])


@kopf.on.delete(GROUP, VERSION, GAMEVM_PLURAL, when=_not_paused)
async def delete_gamevm(
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: kopf.Memo,
    retry: int,
    **kwargs: Any,
) -> None:
    """Terminate the instance (Delete) or release it (Orphan); the finalizer waits for it."""
    # kopf passes each index as a kwarg named after its function (not in a handler's type).
    configs: ConfigIndex = kwargs["emulatorconfigs_by_console"]
    app = _app(memo)
    try:
        policy = DeletionPolicy(spec.get("deletionPolicy", DeletionPolicy.DELETE.value))
    except ValueError:
        policy = DeletionPolicy.DELETE
    result = await release(
        app.providers,
        uid=str(meta["uid"]),
        policy=policy,
        status=GameVMStatus.model_validate(dict(status)),
        config=config_for(configs, str(spec.get("consoleType", ""))),
        retry=retry,
        retry_delay=app.settings.retry_delay,
        observe_interval=app.settings.observe_interval,
    )
    if result.orphaned:
        # The mirror reads this from the deleted object: the instance is still tracked.
        await app.kube.patch_gamevm_status(
            str(meta["namespace"]), str(meta["name"]), {"orphaned": True}
        )
    _post(body, result.events)
    if not result.done:
        raise kopf.TemporaryError(result.message, delay=result.retry_after)


PROGRESS_PHASES = frozenset({VMStatus.CREATING, VMStatus.CONFIGURING})


def hold_events(phase: VMStatus | None, events: list[Event]) -> bool:
    """Whether these Events wait: Normal ones of a VM on its way to running are told as
    one when it settles (the choice, the instance and Wolf's address in one `Running`
    Event); a Warning is posted at once, with whatever was held."""
    return bool(events) and phase in PROGRESS_PHASES and all(e.type == "Normal" for e in events)


def _post(body: kopf.Body, events: list[Event]) -> None:
    for event in coalesce_events(events):
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def coalesce_events(events: list[Event]) -> list[Event]:
    """Consecutive Normal Events become one (the last reason, the messages joined)."""
    result: list[Event] = []
    for event in events:
        last = result[-1] if result else None
        if last is not None and last.type == event.type == "Normal":
            result[-1] = Event("Normal", event.reason, f"{last.message}; {event.message}")
        else:
            result.append(event)
    return result
