"""EmulatorConfig handlers: keep the in-memory config table current and mirror it."""

import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from gamevm.handlers.context import AppContext
from gamevm.handlers.errors import describe_validation_error
from gamevm.models.conditions import ConditionType
from gamevm.models.emulator_config import EmulatorConfigSpec, EmulatorConfigStatus
from gamevm.models.names import EMULATORCONFIG_PLURAL, GROUP, VERSION
from gamevm.services.conditions import get_condition, set_condition

log = logging.getLogger(__name__)


ConfigIndex = kopf.Index[str, EmulatorConfigSpec]


@kopf.index(GROUP, VERSION, EMULATORCONFIG_PLURAL)
def emulatorconfigs_by_console(spec: kopf.Spec, **_: Any) -> dict[str, EmulatorConfigSpec]:
    """Valid configs by console. kopf fills every index before it starts the handlers, so a
    VM's daemon never runs ahead of the configs after a restart."""
    try:
        config = EmulatorConfigSpec.model_validate(dict(spec))
    except ValidationError:
        return {}
    return {config.console_type.value: config}


def config_for(index: ConfigIndex, console: str) -> EmulatorConfigSpec | None:
    """The console's config from the index, if there is a valid one."""
    store = index.get(console)
    return next(iter(store), None) if store is not None else None


@kopf.on.event(GROUP, VERSION, EMULATORCONFIG_PLURAL)
async def emulatorconfig_event(
    event: kopf.RawEvent,
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Wake the console's VMs (changes apply to the next VMs at once), mirror, report."""
    app: AppContext = memo.app
    name = str(meta.get("name", ""))
    if event.get("type") == "DELETED":
        if app.mirror is not None:
            app.mirror.enqueue_config_deleted(name)
        return
    try:
        config = EmulatorConfigSpec.model_validate(dict(spec))
    except ValidationError as exc:
        await _report(
            app, body, meta, status, "False", "InvalidSpec", describe_validation_error(exc)
        )
        return
    app.wake_console(config.console_type.value)
    if app.mirror is not None:
        app.mirror.enqueue_config_from(body)
    await _report(app, body, meta, status, "True", "Accepted", "used for new GameVMs")
    await _tell_mirror_degraded(app, body, meta)


# How long a config event waits for the mirror's first probe of the server (only right
# after start: later the answer is known at once).
_CAPABILITY_WAIT_SECONDS = 5.0


async def _tell_mirror_degraded(app: AppContext, body: kopf.Body, meta: kopf.Meta) -> None:
    """Once per process and config: a Warning Event when the mirror works around a server
    that lacks TTL, partial or unique indexes (`kubectl describe emucfg` shows it; the
    gauge gamevm_mirror_degraded says the same on /metrics)."""
    uid = str(meta.get("uid", ""))
    if app.mirror is None or uid in app.mirror_degraded_told:
        return
    if await app.mirror.wait_capabilities(_CAPABILITY_WAIT_SECONDS) is None:
        return  # MongoDB not reached yet: the next event of this config tells
    app.mirror_degraded_told.add(uid)
    degradations = app.mirror.degradations
    if degradations:
        kopf.event(body, type="Warning", reason="MirrorDegraded", message="; ".join(degradations))


async def _report(
    app: AppContext,
    body: kopf.Body,
    meta: kopf.Meta,
    status: kopf.Status,
    value: str,
    reason: str,
    message: str,
) -> None:
    current = EmulatorConfigStatus.model_validate(dict(status))
    generation = meta.get("generation")
    previous = get_condition(current.conditions, ConditionType.READY)
    if (
        previous is not None
        and previous.reason == reason
        and current.observed_generation == generation
    ):
        return
    current.conditions = set_condition(
        current.conditions,
        ConditionType.READY,
        value,  # type: ignore[arg-type]
        reason,
        message,
        now=datetime.now(UTC),
        generation=generation,
    )
    current.observed_generation = generation
    await app.kube.patch_emulatorconfig_status(
        str(meta["name"]), current.model_dump(mode="json", exclude_none=True)
    )
    if value != "True":
        kopf.event(body, type="Warning", reason=reason, message=message)
