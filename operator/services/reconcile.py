"""The GameVM reconcile: one idempotent step at a time, from observed state to desired state.

Each call of `Reconciler.step` looks at the object and the provider, does at most one
provider mutation, and returns the new status, the Events to post and when to look again.
The caller writes the status before calling again, which is what makes the flow crash-safe:
the chosen placement is recorded before the create is sent, and the instance id right after.
"""

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from gamevm.models.conditions import ConditionType
from gamevm.models.emulator_config import EmulatorConfigSpec
from gamevm.models.enums import CloudProvider, PowerRequest, RunStrategy, VMStatus
from gamevm.models.gamevm import GameVMSpec, GameVMStatus, ProviderDecision
from gamevm.models.names import ANNOTATION_LAST_ACTIVITY, ANNOTATION_POWER_REQUEST
from gamevm.models.names import access_secret_name as secret_name_for
from gamevm.providers.addresses import UnsafeAddressError
from gamevm.providers.base import (
    CreateSpec,
    ErrorReason,
    Instance,
    InstanceState,
    Provider,
    ProviderError,
)
from gamevm.services.access import derive_access
from gamevm.services.conditions import get_condition, set_condition
from gamevm.services.ports import AccessSecrets, Selector, VMRef, WolfProbe
from gamevm.services.power import (
    StopReason,
    auto_stop_verdict,
    latest,
    parse_power_request,
    wants_running,
)

INSTANCE_NAME_PREFIX = "gvm-"
UNAVAILABLE_RETRIES_BEFORE_FALLBACK = 3
FIRST_OBSERVE_AFTER_CREATE = 1.0
UNSAFE_WOLF_ADDRESS = "UnsafeWolfAddress"


def instance_name(uid: str) -> str:
    """Deterministic provider-side name: the same GameVM always maps to the same instance."""
    digest = hashlib.sha256(uid.encode()).hexdigest()[:12]
    return f"{INSTANCE_NAME_PREFIX}{uid.split('-', maxsplit=1)[0]}-{digest}"


def known_instance(status: GameVMStatus) -> Instance | None:
    """The running instance as status last recorded it (IP included), or None.

    After a restart this spares one per-instance provider look per running VM: the shared
    list says whether it still runs, status says where (`gamevm.providers.budget.seed`).
    """
    if (
        status.phase is not VMStatus.RUNNING
        or not status.provider_instance_id
        or not status.ip_address
    ):
        return None
    metadata = {k: str(v) for k, v in status.provider_metadata.items()}
    return Instance(
        instance_id=status.provider_instance_id,
        name=status.instance_name or "",
        state=InstanceState.RUNNING,
        ip_address=status.ip_address,
        ports=parse_ports(metadata.pop(PORTS_METADATA_KEY, "")),
        region=status.region,
        price_per_hour=status.cost_per_hour,
        configured=status.cloudypad_configured,
        metadata=metadata,
    )


PORTS_METADATA_KEY = "port_forwards"
"""providerMetadata key of the port forwards ('internal:external ...')."""


def format_ports(ports: Mapping[int, int]) -> str:
    """{47989: 40001} -> '47989:40001' (sorted, space-separated)."""
    return " ".join(f"{i}:{e}" for i, e in sorted(ports.items()))


def parse_ports(text: str) -> dict[int, int]:
    """The inverse of format_ports; malformed pairs are skipped."""
    ports = {}
    for pair in text.split():
        internal, _, external = pair.partition(":")
        if internal.isdigit() and external.isdigit():
            ports[int(internal)] = int(external)
    return ports


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the GameVM."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Timings:
    """How often to look again, per situation (seconds)."""

    observe: float = 5.0
    activity: float = 30.0
    retry_base: float = 10.0
    retry_max: float = 300.0
    idle: float = 300.0


@dataclass
class StepInput:
    """Everything a step reads; built by the handler from the object and memory."""

    ref: VMRef
    spec: GameVMSpec
    status: GameVMStatus
    annotations: Mapping[str, str]
    config: EmulatorConfigSpec | None
    now: datetime
    heartbeat: datetime | None = None
    retries: int = 0
    """Consecutive retryable failures so far (for backoff)."""


@dataclass
class Outcome:
    """What the step decided."""

    status: GameVMStatus
    requeue_after: float
    events: list[Event] = field(default_factory=list)
    consume_power_request: bool = False
    retryable_failure: bool = False
    auto_stopped: StopReason | None = None
    provisioned_seconds: float | None = None
    """Set once, when the VM first reaches running: seconds since the placement decision."""


class Reconciler:
    """Drives one GameVM towards its desired state."""

    def __init__(
        self,
        *,
        providers: Mapping[CloudProvider, Provider],
        selector: Selector,
        secrets: AccessSecrets,
        wolf: WolfProbe,
        master_key: bytes,
        timings: Timings,
    ) -> None:
        self._providers = providers
        self._selector = selector
        self._secrets = secrets
        self._wolf = wolf
        self._master_key = master_key
        self._timings = timings

    async def step(self, inp: StepInput) -> Outcome:
        """One reconcile step."""
        st = inp.status.model_copy(deep=True)
        st.vm_id = inp.ref.uid
        st.game_id = inp.spec.game_id
        st.instance_name = instance_name(inp.ref.uid)
        st.observed_generation = inp.ref.generation
        out = Outcome(status=st, requeue_after=self._timings.observe)
        request_raw = inp.annotations.get(ANNOTATION_POWER_REQUEST)
        request = parse_power_request(request_raw)
        if request_raw is not None:
            out.consume_power_request = True
            if request is None:
                out.events.append(
                    Event(
                        "Warning",
                        "InvalidPowerRequest",
                        f"{ANNOTATION_POWER_REQUEST}={request_raw!r} ignored: use start or stop",
                    )
                )
        try:
            if st.provider_instance_id is None:
                await self._provision(inp, out, request)
            else:
                await self._operate(inp, out, request)
        except ProviderError as exc:
            self._provider_failed(inp, out, exc)
        return out

    # -- provisioning -------------------------------------------------------------------

    async def _provision(self, inp: StepInput, out: Outcome, request: PowerRequest | None) -> None:
        st = out.status
        if not wants_running(inp.spec.run_strategy, st.phase, request):
            self._halted_before_create(inp, out)
            return
        if inp.config is None:
            message = (
                f"no EmulatorConfig named {inp.spec.console_type.value!r}; "
                "create one (kubectl get emulatorconfigs)"
            )
            self._warn_once(inp, out, "EmulatorConfigMissing", message)
            self._set(out, inp, ConditionType.READY, "False", "EmulatorConfigMissing", message)
            out.requeue_after = self._timings.idle
            return
        decision = st.decision
        if decision is None or decision.chosen_provider is None:
            await self._select(inp, out)
            return
        await self._create(inp, out, inp.config, decision)

    def _halted_before_create(self, inp: StepInput, out: Outcome) -> None:
        st = out.status
        if st.phase is not VMStatus.STOPPED:
            out.events.append(
                Event("Normal", "Halted", "runStrategy keeps the VM stopped; nothing created")
            )
        st.phase = VMStatus.STOPPED
        st.stop_reason = StopReason.HALTED.value
        st.message = "not provisioned: the VM is held stopped"
        self._set(out, inp, ConditionType.READY, "False", "Stopped", st.message)
        out.requeue_after = self._timings.idle

    async def _select(self, inp: StepInput, out: Outcome) -> None:
        st = out.status
        assert inp.config is not None  # noqa: S101  # checked by the caller
        previous = st.decision or ProviderDecision()
        exclude = frozenset(previous.failed_placements)
        # A preferred provider that is briefly unavailable is retried a few times before
        # the selection falls back past it.
        selection = await self._selector.select(
            inp.spec,
            inp.config,
            exclude,
            tolerate_unavailable=inp.retries >= UNAVAILABLE_RETRIES_BEFORE_FALLBACK,
        )
        st.decision = ProviderDecision(
            candidates=selection.candidates,
            decided_at=inp.now,
            failed_placements=previous.failed_placements,
        )
        offer = selection.chosen
        if offer is None:
            st.phase = VMStatus.ERROR
            st.message = f"no eligible provider: {selection.summary}"
            self._set(out, inp, ConditionType.READY, "False", "NoEligibleProvider", st.message)
            self._set(
                out, inp, ConditionType.PROVISIONED, "False", "NoEligibleProvider", st.message
            )
            self._warn_once(inp, out, "NoEligibleProvider", st.message)
            out.requeue_after = self._timings.idle
            return
        st.decision.chosen_provider = offer.provider
        st.decision.chosen_region = offer.region
        st.decision.chosen_placement = offer.placement_id
        st.phase = VMStatus.CREATING
        st.provider = offer.provider
        st.region = offer.region
        st.preset = selection.preset
        st.cost_per_hour = round(offer.price_per_hour, 4)
        st.access_secret_name = secret_name_for(inp.ref.name)
        if offer.provider not in st.attempted_providers:
            st.attempted_providers.append(offer.provider)
        st.message = f"creating on {offer.provider.value} in {offer.location_label}"
        self._set(out, inp, ConditionType.PROVISIONED, "False", "Creating", st.message)
        self._set(out, inp, ConditionType.READY, "False", "Creating", st.message)
        rejected = sum(1 for c in selection.candidates if not c.accepted)
        out.events.append(
            Event(
                "Normal",
                "ProviderSelected",
                f"{offer.provider.value} {offer.region} ({offer.location_label}, "
                f"{offer.price_per_hour:.3f} USD/h, preset {selection.preset}); "
                f"{rejected} candidate(s) rejected",
            )
        )
        # Record the choice before any create is sent: a restart resumes at this placement.
        out.requeue_after = 0

    async def _create(
        self,
        inp: StepInput,
        out: Outcome,
        config: EmulatorConfigSpec,
        decision: ProviderDecision,
    ) -> None:
        st = out.status
        assert decision.chosen_provider is not None  # noqa: S101
        provider = self._providers[decision.chosen_provider]
        name = instance_name(inp.ref.uid)
        material = derive_access(self._master_key, inp.ref.uid)
        await self._secrets.ensure(inp.ref, secret_name_for(inp.ref.name), material)
        offer = await self._selector.offer_for(
            inp.spec, config, decision.chosen_provider.value, decision.chosen_placement or ""
        )
        if offer is None:
            # An instance may exist from a create cut short (crash): adopt it, never fall
            # back past it.
            instance = await provider.find(name)
            if instance is None:
                self._fall_back(
                    inp, out, "PlacementGone", "the chosen placement is no longer offered"
                )
                return
        else:
            # `create` looks the deterministic name up first: a retry adopts, never doubles.
            instance = await provider.create(
                CreateSpec(
                    name=name,
                    preset=st.preset or config.default_preset,
                    offer=offer,
                    ssh_public_key=material.ssh_public_key,
                    tags={
                        "gamevm.dev/namespace": inp.ref.namespace,
                        "gamevm.dev/name": inp.ref.name,
                    },
                )
            )
        if instance.state is not InstanceState.RUNNING or not instance.ip_address:
            # Create responses carry little (TensorDock's: id, name, status); one look now
            # often finds the instance up, which saves a status write and an Event.
            instance = await provider.observe(instance.instance_id) or instance
        st.provider_instance_id = instance.instance_id
        created = f"{decision.chosen_provider.value} instance {instance.instance_id}"
        if instance.instance_id != name:
            created += f" ({name})"
        self._set(out, inp, ConditionType.PROVISIONED, "True", "InstanceCreated", created)
        await self._observe_running(inp, out, instance)
        if st.phase is not VMStatus.RUNNING:
            # Fresh instances often come up within seconds: look again soon, then back off.
            out.requeue_after = min(out.requeue_after, FIRST_OBSERVE_AFTER_CREATE)
        # One Event per step: when the new instance is already up, "Running" tells both.
        running = next((e for e in out.events if e.reason == "Running"), None)
        if running is None:
            out.events.append(Event("Normal", "InstanceCreated", created))
        else:
            out.events[out.events.index(running)] = Event(
                "Normal", "Running", f"{created} created; {running.message}"
            )

    def _fall_back(self, inp: StepInput, out: Outcome, reason: str, message: str) -> None:
        st = out.status
        decision = st.decision or ProviderDecision()
        key = f"{decision.chosen_provider}/{decision.chosen_placement}"
        if key not in decision.failed_placements:
            decision.failed_placements.append(key)
        out.events.append(
            Event(
                "Warning",
                "ProviderFallback",
                f"{key}: {reason}: {message}; trying the next candidate",
            )
        )
        decision.chosen_provider = None
        decision.chosen_placement = None
        decision.chosen_region = None
        st.decision = decision
        out.requeue_after = 0

    # -- operating an existing instance ----------------------------------------------------

    async def _operate(self, inp: StepInput, out: Outcome, request: PowerRequest | None) -> None:
        st = out.status
        if st.provider is None or st.provider_instance_id is None:
            raise ProviderError(
                ErrorReason.NOT_FOUND, "status has an instance id but no provider", retryable=False
            )
        provider = self._providers[st.provider]
        instance = await provider.observe(st.provider_instance_id)
        if instance is None:
            st.phase = VMStatus.ERROR
            st.gaming_environment_ready = False
            st.message = (
                f"instance {st.provider_instance_id} no longer exists at {st.provider.value}; "
                "delete the GameVM to clean up"
            )
            if inp.status.phase is not VMStatus.ERROR:
                out.events.append(Event("Warning", "InstanceLost", st.message))
            self._set(out, inp, ConditionType.READY, "False", "InstanceLost", st.message)
            self._set(out, inp, ConditionType.PROVISIONED, "False", "InstanceLost", st.message)
            out.requeue_after = self._timings.idle
            return
        self._apply_instance(st, instance)
        want = wants_running(inp.spec.run_strategy, st.phase, request)
        if want and instance.state in (InstanceState.STOPPED, InstanceState.STOPPING):
            if instance.state is InstanceState.STOPPED:
                await provider.start(instance.instance_id)
                out.events.append(Event("Normal", "Starting", "powering the instance on"))
            st.phase = VMStatus.CONFIGURING
            st.started_at = None
            st.stop_reason = None
            st.last_activity = inp.now
            st.gaming_environment_ready = False
            self._set(out, inp, ConditionType.READY, "False", "Starting", "instance starting")
            self._set(out, inp, ConditionType.AUTO_STOPPED, "False", "Started", "started")
            return
        if not want:
            reason = (
                StopReason.HALTED
                if inp.spec.run_strategy is RunStrategy.HALTED
                else StopReason.REQUESTED
            )
            if st.phase is VMStatus.STOPPED and instance.state in (
                InstanceState.STOPPED,
                InstanceState.STOPPING,
            ):
                settled = instance.state is InstanceState.STOPPED
                out.requeue_after = self._timings.idle if settled else self._timings.observe
                return
            await self._power_off(inp, out, provider, instance, reason, "stop requested")
            return
        await self._observe_running(inp, out, instance)

    async def _observe_running(self, inp: StepInput, out: Outcome, instance: Instance) -> None:
        st = out.status
        self._apply_instance(st, instance)
        if instance.state is InstanceState.ERROR:
            st.phase = VMStatus.ERROR
            st.message = "the provider reports the instance in error"
            self._set(out, inp, ConditionType.READY, "False", "InstanceError", st.message)
            out.events.append(Event("Warning", "InstanceError", st.message))
            out.requeue_after = self._timings.idle
            return
        if instance.state is not InstanceState.RUNNING or not instance.ip_address:
            if st.phase not in (VMStatus.CONFIGURING, VMStatus.CREATING):
                st.phase = VMStatus.CREATING if st.started_at is None else VMStatus.CONFIGURING
            st.message = f"instance {instance.state.value}"
            out.requeue_after = self._timings.observe
            return
        try:
            wolf = await self._wolf.probe(instance.ip_address, instance.wolf_http_port)
        except UnsafeAddressError as exc:
            # Never connect: the VM stays unready (and its deadlines still run) until the
            # provider reports a public address.
            st.phase = VMStatus.CONFIGURING
            st.gaming_environment_ready = False
            st.message = f"Wolf not probed: {exc}"
            previous = get_condition(inp.status.conditions, ConditionType.ENVIRONMENT_READY)
            if previous is None or previous.reason != UNSAFE_WOLF_ADDRESS:
                out.events.append(Event("Warning", UNSAFE_WOLF_ADDRESS, st.message))
            self._set(
                out, inp, ConditionType.ENVIRONMENT_READY, "False", UNSAFE_WOLF_ADDRESS, st.message
            )
            self._set(out, inp, ConditionType.READY, "False", "Configuring", st.message)
            out.requeue_after = self._timings.idle
            return
        if wolf is None:
            st.phase = VMStatus.CONFIGURING
            st.gaming_environment_ready = False
            st.message = "instance up; waiting for Wolf on its Moonlight HTTP port"
            self._set(
                out, inp, ConditionType.ENVIRONMENT_READY, "False", "WolfNotAnswering", st.message
            )
            self._set(out, inp, ConditionType.READY, "False", "Configuring", st.message)
            out.requeue_after = self._timings.observe
            return
        first_time = st.phase is not VMStatus.RUNNING
        if first_time:
            st.started_at = inp.now
            st.last_activity = latest(st.last_activity, inp.now)
            out.events.append(
                Event(
                    "Normal",
                    "Running",
                    f"Wolf answers at {instance.ip_address}; ready for Moonlight",
                )
            )
            decided = st.decision.decided_at if st.decision else None
            if decided is not None:
                out.provisioned_seconds = max(0.0, (inp.now - decided).total_seconds())
        st.phase = VMStatus.RUNNING
        st.gaming_environment_ready = True
        st.stop_reason = None
        st.message = "running"
        if wolf.busy:
            st.last_moonlight_connection = inp.now
        self._set(out, inp, ConditionType.ENVIRONMENT_READY, "True", "WolfAnswering", "Wolf is up")
        self._set(out, inp, ConditionType.READY, "True", "Running", "ready for Moonlight")
        await self._check_activity(inp, out, instance, wolf.busy)

    async def _check_activity(
        self, inp: StepInput, out: Outcome, instance: Instance, busy: bool
    ) -> None:
        st = out.status
        annotated = _parse_time(inp.annotations.get(ANNOTATION_LAST_ACTIVITY))
        st.last_activity = latest(
            st.last_activity,
            inp.now if busy else None,
            inp.heartbeat,
            annotated,
        )
        out.requeue_after = self._timings.activity
        if inp.spec.run_strategy is not RunStrategy.MANUAL or st.started_at is None:
            return
        verdict = auto_stop_verdict(
            now=inp.now,
            started_at=st.started_at,
            last_activity=st.last_activity,
            auto_stop_timeout=inp.spec.auto_stop_timeout,
            max_session_hours=inp.config.max_session_hours if inp.config else None,
        )
        if verdict.stop is None:
            remaining = inp.spec.auto_stop_timeout - verdict.idle_seconds
            out.requeue_after = max(1.0, min(self._timings.activity, remaining + 0.5))
            return
        assert st.provider is not None  # noqa: S101
        await self._power_off(
            inp, out, self._providers[st.provider], instance, verdict.stop, verdict.message
        )
        out.auto_stopped = verdict.stop

    async def _power_off(
        self,
        inp: StepInput,
        out: Outcome,
        provider: Provider,
        instance: Instance,
        reason: StopReason,
        message: str,
    ) -> None:
        st = out.status
        if instance.state not in (InstanceState.STOPPED, InstanceState.STOPPING):
            await provider.stop(instance.instance_id)
        st.phase = VMStatus.STOPPED
        st.stop_reason = reason.value
        st.started_at = None
        st.gaming_environment_ready = False
        st.message = f"stopped: {message}"
        auto = reason in (StopReason.IDLE, StopReason.MAX_SESSION)
        out.events.append(
            Event("Normal", "AutoStopped" if auto else "Stopped", f"{reason}: {message}")
        )
        self._set(out, inp, ConditionType.READY, "False", "Stopped", st.message)
        self._set(out, inp, ConditionType.ENVIRONMENT_READY, "False", "Stopped", "VM stopped")
        if auto:
            self._set(out, inp, ConditionType.AUTO_STOPPED, "True", reason.value, message)
        out.requeue_after = self._timings.idle

    # -- shared ---------------------------------------------------------------------------

    def _provider_failed(self, inp: StepInput, out: Outcome, exc: ProviderError) -> None:
        st = out.status
        creating = st.provider_instance_id is None and st.decision and st.decision.chosen_provider
        if not exc.retryable and creating:
            self._fall_back(inp, out, exc.reason.value, exc.message)
            return
        if exc.retryable:
            delay = min(
                self._timings.retry_max, self._timings.retry_base * 2 ** min(inp.retries, 8)
            )
            delay = max(exc.retry_after or 0.0, random.uniform(delay / 2, delay))  # noqa: S311
            out.retryable_failure = True
            out.requeue_after = delay
            st.message = f"provider error, retrying in {delay:.0f} s: {exc}"
            self._set(out, inp, ConditionType.SYNCED, "False", exc.reason.value, st.message)
            if inp.retries == 0:
                out.events.append(Event("Warning", exc.reason.value, st.message))
            return
        st.phase = VMStatus.ERROR
        st.message = str(exc)
        self._set(out, inp, ConditionType.READY, "False", exc.reason.value, st.message)
        out.events.append(Event("Warning", exc.reason.value, st.message))
        out.requeue_after = self._timings.idle

    @staticmethod
    def _warn_once(inp: StepInput, out: Outcome, reason: str, message: str) -> None:
        """A Warning Event when Ready turns to this reason (not again on every retry)."""
        previous = get_condition(inp.status.conditions, ConditionType.READY)
        if previous is None or previous.reason != reason or previous.message != message:
            out.events.append(Event("Warning", reason, message))

    @staticmethod
    def _apply_instance(st: GameVMStatus, instance: Instance) -> None:
        st.ip_address = instance.ip_address
        if instance.region:
            st.region = instance.region
        if instance.price_per_hour is not None:
            st.cost_per_hour = round(instance.price_per_hour, 4)
        st.cloudypad_configured = instance.configured
        st.provider_metadata = dict(instance.metadata)
        if instance.ports:
            # Kept so a restarted operator can reach Wolf without asking the provider again.
            st.provider_metadata[PORTS_METADATA_KEY] = format_ports(instance.ports)

    @staticmethod
    def _set(
        out: Outcome,
        inp: StepInput,
        type_: ConditionType,
        status: str,
        reason: str,
        message: str,
    ) -> None:
        out.status.conditions = set_condition(
            out.status.conditions,
            type_,
            status,  # type: ignore[arg-type]
            reason,
            message,
            now=inp.now,
            generation=inp.ref.generation,
        )


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
