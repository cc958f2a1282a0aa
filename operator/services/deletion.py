"""Deleting a GameVM: terminate its instance everywhere a create was sent, or leave it.

The handler's finalizer waits for `release` to say `done`; until then it retries after
`retry_after`. Orphan is honoured only when the console's EmulatorConfig allows it: a
forbidden Orphan is deleted like Delete (an instance nothing tracks would bill unbounded).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from gamevm.models.emulator_config import EmulatorConfigSpec
from gamevm.models.enums import CloudProvider, DeletionPolicy
from gamevm.models.gamevm import GameVMStatus
from gamevm.providers.base import Provider, ProviderError
from gamevm.services.lifecycle import Event
from gamevm.services.policy import orphan_allowed
from gamevm.services.reconcile import instance_name


@dataclass
class Release:
    """What one attempt at releasing the instance did."""

    done: bool
    events: list[Event] = field(default_factory=list)
    retry_after: float = 0.0
    message: str = ""
    orphaned: bool = False


async def release(
    providers: Mapping[CloudProvider, Provider],
    *,
    uid: str,
    policy: DeletionPolicy,
    status: GameVMStatus,
    config: EmulatorConfigSpec | None,
    retry: int,
    retry_delay: float,
    observe_interval: float,
) -> Release:
    """One attempt: orphan (when allowed) or delete, then confirm the instance is gone."""
    st = status
    if orphan_allowed(policy, config):
        where = st.provider.value if st.provider else "no provider"
        message = (
            f"instance {st.provider_instance_id or '(none)'} left running at {where} "
            "(deletionPolicy Orphan); it stays in the mirror"
        )
        return Release(True, [Event("Normal", "Orphaned", message)], orphaned=True)
    events: list[Event] = []
    if policy is DeletionPolicy.ORPHAN:
        events.append(
            Event(
                "Warning",
                "OrphanNotAllowed",
                "deletionPolicy Orphan is not allowed by the EmulatorConfig: "
                "the instance is deleted",
            )
        )
    providers_used = list(
        dict.fromkeys([*st.attempted_providers, *([st.provider] if st.provider else [])])
    )
    name = instance_name(uid)
    for provider_name in providers_used:
        provider = providers[provider_name]
        try:
            instance_id = st.provider_instance_id if provider_name == st.provider else None
            if instance_id is None:
                found = await provider.find(name)
                instance_id = found.instance_id if found else None
            if instance_id is None:
                continue
            await provider.delete(instance_id)
            if await provider.observe(instance_id, address=False) is not None:
                message = f"{provider_name.value} instance {instance_id} is still being deleted"
                return Release(False, events, observe_interval, message)
        except ProviderError as exc:
            delay = min(300.0, retry_delay * 2 ** min(retry, 5))
            if exc.retry_after:
                delay = max(delay, exc.retry_after)
            message = (
                f"cannot delete the {provider_name.value} instance yet ({exc}); retrying in "
                f"{delay:.0f} s. The finalizer stays until the provider confirms; set "
                "spec.deletionPolicy: Orphan (if the EmulatorConfig allows it) to release "
                "the instance instead."
            )
            events.append(Event("Warning", "DeleteFailed", message))
            return Release(False, events, delay, message)
    events.append(Event("Normal", "InstanceDeleted", "instance terminated"))
    return Release(True, events)
