"""The GameVM reconcile: one idempotent step at a time, from observed state to desired state.

Each call of `Reconciler.step` looks at the object and the provider, does at most one
provider mutation, and returns the new status, the Events to post and when to look again.
The caller writes the status before calling again, which is what makes the flow crash-safe:
the chosen placement is recorded before the create is sent, and the instance id right after.

Which transition applies is decided here; what a transition sets (phase, conditions, stop
reason, Event) is the table in `services/lifecycle.py`. Every billing phase is bounded:
creating and configuring by the EmulatorConfig's `maxProvisioningMinutes`, every phase
with an instance by the session cap and (Manual) the idle timeout.
"""

import hashlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from gamevm.models.conditions import ConditionType
from gamevm.models.emulator_config import EmulatorConfigSpec
from gamevm.models.enums import CloudProvider, GpuTier, PowerRequest, RunStrategy, VMStatus
from gamevm.models.gamevm import (
    ConfigurationStatus,
    GameVMSpec,
    GameVMStatus,
    ProviderDecision,
)
from gamevm.models.names import (
    ANNOTATION_LAST_ACTIVITY,
    ANNOTATION_POWER_REQUEST,
    SSH_PORT,
    WOLF_PORT,
)
from gamevm.models.names import access_secret_name as secret_name_for
from gamevm.models.reasons import Reason, StopReason
from gamevm.providers.addresses import UnsafeAddressError
from gamevm.providers.base import (
    CreateSpec,
    ErrorReason,
    Instance,
    InstanceState,
    Provider,
    ProviderError,
)
from gamevm.providers.wolf import WolfStatus
from gamevm.services.access import DEFAULT_KEY_ID, AccessMaterial, KeyRing, derive_access
from gamevm.services.conditions import get_condition
from gamevm.services.configuration import (
    ACTIVITY_PATH,
    REPORT_PATH,
    ConfigurationReport,
    SecretReader,
    WolfHostConfig,
)
from gamevm.services.lifecycle import Event, enter
from gamevm.services.policy import (
    admission,
    effective_run_strategy,
    provisioning_deadline_seconds,
    session_cap_hours,
)
from gamevm.services.ports import AccessSecrets, Selector, VMRef, WolfProbe
from gamevm.services.power import (
    activity_check_delay,
    auto_stop_verdict,
    held,
    latest,
    not_in_future,
    parse_power_request,
    wants_running,
)
from gamevm.services.selection import offer_violation
from gamevm.services.sharding import shard_of
from gamevm.services.userdata import WolfHostRequest, render_user_data

__all__ = ["Event", "Outcome", "Reconciler", "StepInput", "Timings", "instance_name"]

INSTANCE_NAME_PREFIX = "gvm-"
UNAVAILABLE_RETRIES_BEFORE_FALLBACK = 3
FIRST_OBSERVE_AFTER_CREATE = 1.0
WOLF_MISSES_BEFORE_CONFIGURING = 3
"""Consecutive unanswered Wolf probes before a running VM counts as configuring again: one
probe lost to a busy network or a loaded operator is not a change of state (it would cost
two status writes and an Event, for every VM at once under load)."""
PROVISIONING_PHASES = frozenset({VMStatus.CREATING, VMStatus.CONFIGURING})

SPREAD_STEPS = 1000
"""Each VM's fixed place in the spread of activity-check gaps (`activity_check_delay`)."""


_HEX_AS_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def instance_name(uid: str) -> str:
    """Deterministic provider-side name: the same GameVM always maps to the same instance.

    Letters only between the hyphens: CloudyPad accepts a name only when lodash's
    `kebabCase(name) === name`, which splits letters from digits (`gvm-3f2a` would become
    `gvm-3-f-2-a` and the CLI would prompt). Hex digits map one to one onto `a`..`p`, so
    the name stays unique and recognisable: the uid's first group, then a digest.
    """
    digest = hashlib.sha256(uid.encode()).hexdigest()
    head = uid.split("-", maxsplit=1)[0].lower()
    if not re.fullmatch(r"[0-9a-f]{1,8}", head):
        head = digest[12:20]
    return f"{INSTANCE_NAME_PREFIX}{head.translate(_HEX_AS_LETTERS)}-" + digest[:12].translate(
        _HEX_AS_LETTERS
    )


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
class Timings:
    """How often to look again, per situation (seconds)."""

    observe: float = 5.0
    activity: float = 30.0
    """The shortest gap between two activity checks of a running VM (near its deadline)."""
    activity_max: float = 300.0
    """The longest (far from the idle deadline, or no idle deadline): `activity_check_delay`."""
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
    configuration: ConfigurationReport | None = None
    """The VM's latest configuration report (HTTP endpoint), if any arrived."""
    wolf_misses: int = 0
    """Consecutive unanswered Wolf probes of this running VM so far."""


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
    provisioning_timed_out: bool = False
    policy_denied: Reason | None = None
    cost_guard_refused: bool = False
    wolf_misses: int = 0
    """Consecutive unanswered Wolf probes of a running VM (the next step's input)."""
    may_hold_write: bool = False
    """This status may reach the API server a little later (with the next step's): a
    crash before it is written loses nothing, as a restart adopts the instance by name."""


class Reconciler:
    """Drives one GameVM towards its desired state."""

    def __init__(
        self,
        *,
        providers: Mapping[CloudProvider, Provider],
        selector: Selector,
        secrets: AccessSecrets,
        wolf: WolfProbe,
        keys: KeyRing | None,
        timings: Timings,
        wolf_host: WolfHostConfig | None = None,
        secret_reader: SecretReader | None = None,
        credentials_secret: str | None = None,
    ) -> None:
        self._providers = providers
        self._selector = selector
        self._secrets = secrets
        self._wolf = wolf
        self._keys = keys
        self._intents: set[str] = set()
        """VMs whose access-Secret intent this process recorded (see _ensure_access_secret)."""
        self._sent: set[str] = set()
        """VMs whose access-Secret create this process sent without recording the result."""
        self._timings = timings
        self._wolf_host = wolf_host or WolfHostConfig(public_url=None)
        self._secret_reader = secret_reader
        self._credentials_secret = credentials_secret

    def blocked(
        self, ref: VMRef, status: GameVMStatus, reason: Reason, message: str, now: datetime
    ) -> Outcome:
        """A step that cannot run (the spec does not parse, no access key): say why once,
        provision nothing, leave an existing instance as it is."""
        st = status.model_copy(deep=True)
        delay = self._timings.retry_base * 6
        if reason is Reason.INVALID_SPEC:
            delay = self._timings.idle  # an edit of the spec wakes the VM anyway
        out = Outcome(status=st, requeue_after=delay)
        event = enter(st, reason, message, now=now, generation=ref.generation)
        if event is not None:
            out.events.append(event)
        return out

    async def step(self, inp: StepInput) -> Outcome:
        """One reconcile step."""
        if self._keys is None:
            return self.blocked(
                inp.ref,
                inp.status,
                Reason.ACCESS_KEY_MISSING,
                f"the operator's Secret {self._credentials_secret or '(credentials)'!r} has no "
                "usable access master key ('access-master-key', 32+ random bytes, or the key "
                "ring 'access-master-keys'); see the operator's log and docs/operations.md",
                inp.now,
            )
        # A copy through pydantic-core: copy.deepcopy (model_copy(deep=True)) cost ~4x as
        # much, on every step of every VM (bench/README.md, steady run profile).
        st = GameVMStatus.model_validate(inp.status.model_dump())
        st.vm_id = inp.ref.uid
        st.game_id = inp.spec.game_id
        st.instance_name = instance_name(inp.ref.uid)
        st.observed_generation = inp.ref.generation
        out = Outcome(status=st, requeue_after=self._timings.observe)
        self._take_report(inp, st)
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
            if not self._admitted(inp, out):
                pass
            elif st.provider_instance_id is None:
                await self._provision(inp, out, request)
            else:
                await self._operate(inp, out, request)
        except ProviderError as exc:
            self._provider_failed(inp, out, exc)
        else:
            # Synced recovers on every step that went through (after an outage, after a
            # pause), not only on the first.
            self._enter(inp, out, Reason.RECONCILED, "reconciled")
        return out

    # -- admission ----------------------------------------------------------------------

    def _admitted(self, inp: StepInput, out: Outcome) -> bool:
        """Whether provisioning may go on; a denial is reported (condition, Event)."""
        denial = admission(inp.spec, inp.config)
        if denial is None:
            if inp.config is not None:
                self._enter(inp, out, Reason.POLICY_ALLOWED, "allowed by the EmulatorConfig")
            return True
        out.policy_denied = denial.reason
        self._enter(inp, out, denial.reason, denial.message)
        # An existing instance is still operated (a forbidden Always counts as Manual, a
        # forbidden Orphan is deleted with the GameVM); nothing new is provisioned.
        if out.status.provider_instance_id is None:
            out.requeue_after = self._timings.idle
            return False
        return True

    # -- provisioning -------------------------------------------------------------------

    async def _provision(self, inp: StepInput, out: Outcome, request: PowerRequest | None) -> None:
        st = out.status
        strategy = effective_run_strategy(inp.spec, inp.config)
        if held(st.stop_reason) and request is not PowerRequest.START:
            # Stopped by a limit before any instance existed: stay so until asked.
            out.requeue_after = self._timings.idle
            return
        if not wants_running(strategy, st.phase, request, st.stop_reason):
            self._enter(inp, out, Reason.HALTED, "not provisioned: the VM is held stopped")
            out.requeue_after = self._timings.idle
            return
        if request is PowerRequest.START and held(st.stop_reason):
            # A fresh attempt: a new choice, a new deadline.
            st.decision = None
            st.stop_reason = None
        if inp.config is None:
            message = (
                f"no EmulatorConfig named {inp.spec.console_type.value!r}; "
                "create one (kubectl get emulatorconfigs)"
            )
            self._enter(inp, out, Reason.EMULATOR_CONFIG_MISSING, message)
            out.requeue_after = self._timings.idle
            return
        decision = st.decision
        if decision is None or decision.chosen_provider is None:
            await self._select(inp, out)
            return
        if await self._provisioning_timed_out(inp, out, None):
            return
        if st.access_key_id is None:
            # Chosen by a version without key ids: its material came from the one key.
            st.access_key_id = DEFAULT_KEY_ID
        await self._create(inp, out, inp.config, decision)

    async def _ensure_access_secret(self, inp: StepInput, out: Outcome, master: bytes) -> bool:
        """Create `<name>-access` before anything is provisioned; False: blocked.

        The operator cannot read Secrets, so a Secret of that name that already exists
        cannot be inspected. It is never adopted when this process recorded the intent
        (status.accessKeyId, written with the provider choice) and had not sent a create
        yet: then it existed before the operator ever tried. Only after a restart, when
        the previous process may have created it and died before recording that, is an
        existing one taken as ours (docs/operations.md, "Access Secrets").
        """
        st = out.status
        uid = inp.ref.uid
        name = secret_name_for(inp.ref.name)
        ready = get_condition(inp.status.conditions, ConditionType.READY)
        known_foreign = ready is not None and ready.reason == Reason.ACCESS_SECRET_CONFLICT
        first_try = uid in self._intents and uid not in self._sent
        self._sent.add(uid)
        if await self._secrets.create(inp.ref, name, derive_access(master, uid)):
            st.access_secret_name = name
            self._intents.discard(uid)
            self._sent.discard(uid)
            return True
        if not (first_try or known_foreign):
            st.access_secret_name = name
            self._intents.discard(uid)
            self._sent.discard(uid)
            out.events.append(
                Event(
                    "Normal",
                    "AccessSecretRecovered",
                    f"Secret {name} exists after an operator restart during its creation; "
                    "taken as the one the operator created",
                )
            )
            return True
        self._sent.discard(uid)
        self._intents.add(uid)  # still ours to create once the name is free
        self._enter(
            inp,
            out,
            Reason.ACCESS_SECRET_CONFLICT,
            f"Secret {name} already existed before the operator created it for this "
            "GameVM; it is not used and nothing is provisioned. Delete or rename it to "
            "continue (the operator retries)",
        )
        out.requeue_after = self._timings.idle
        return False

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
            message = f"no eligible provider: {selection.summary}"
            self._enter(inp, out, Reason.NO_ELIGIBLE_PROVIDER, message)
            out.requeue_after = self._timings.idle
            return
        st.decision.chosen_provider = offer.provider
        st.decision.chosen_region = offer.region
        st.decision.chosen_placement = offer.placement_id
        st.decision.chosen_gpu_model = offer.gpu_model
        st.provider = offer.provider
        st.region = offer.region
        st.preset = selection.preset
        st.cost_per_hour = round(offer.price_per_hour, 4)
        if st.provisioning_since is None or st.phase not in PROVISIONING_PHASES:
            # The deadline counts from the first choice, not from each fallback.
            st.provisioning_since = inp.now
        if st.access_key_id is None and self._keys is not None:
            # The intent, written with the choice: this process will create the Secret.
            st.access_key_id = self._keys.active_id
            self._intents.add(inp.ref.uid)
        if offer.provider not in st.attempted_providers:
            st.attempted_providers.append(offer.provider)
        rejected = sum(1 for c in selection.candidates if not c.accepted)
        self._enter(
            inp,
            out,
            Reason.CREATING,
            f"creating on {offer.provider.value} in {offer.location_label}",
            event_message=(
                f"{offer.provider.value} {offer.region} ({offer.location_label}, "
                f"{offer.price_per_hour:.3f} USD/h, preset {selection.preset}); "
                f"{rejected} candidate(s) rejected"
            ),
        )
        # Record the choice before any create is sent: a restart resumes at this placement.
        out.requeue_after = 0

    async def _access_material(self, inp: StepInput, out: Outcome) -> AccessMaterial | None:
        """The VM's material from its own master key, its Secret created first; None:
        blocked (the key was removed, or a foreign Secret holds the name)."""
        st = out.status
        master = self._keys.key(st.access_key_id) if self._keys else None
        if master is None:
            self._enter(
                inp,
                out,
                Reason.ACCESS_KEY_REMOVED,
                f"the access master key {st.access_key_id!r} this VM was given has been "
                "removed from the operator's Secret; restore it or recreate the GameVM",
            )
            out.requeue_after = self._timings.idle
            return None
        if st.access_secret_name is None and not await self._ensure_access_secret(inp, out, master):
            return None
        return derive_access(master, inp.ref.uid)

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
        material = await self._access_material(inp, out)
        if material is None:
            return
        offer = await self._selector.offer_for(
            inp.spec,
            config,
            decision.chosen_provider.value,
            decision.chosen_placement or "",
            decision.chosen_gpu_model,
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
            # The last word before money is spent: this exact offer, against this VM's
            # preset and cost caps (whatever cache or re-query produced it).
            violation = offer_violation(config, inp.spec, offer)
            if violation is not None:
                out.cost_guard_refused = True
                self._fall_back(inp, out, "CreateRefused", violation)
                return
            user_data = await self._user_data(inp, out, config, offer.gpu_tier, material)
            if user_data is None:
                return
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
                    user_data=user_data,
                )
            )
            st.cost_per_hour = round(offer.price_per_hour, 4)
        if instance.state is not InstanceState.RUNNING or not instance.ip_address:
            # Create responses carry little (TensorDock's: id, name, status); one look now
            # often finds the instance up, which saves a status write and an Event.
            need = self._needs_provider_address(st)
            instance = await provider.observe(instance.instance_id, address=need) or instance
        st.provider_instance_id = instance.instance_id
        st.started_at = inp.now
        st.last_activity = latest(not_in_future(st.last_activity, inp.now), inp.now)
        created = f"{decision.chosen_provider.value} instance {instance.instance_id}"
        if instance.instance_id != name:
            created += f" ({name})"
        created_event = self._enter(inp, out, Reason.INSTANCE_CREATED, created, post=False)
        await self._observe_running(inp, out, instance)
        if st.phase is not VMStatus.RUNNING:
            # Fresh instances often come up within seconds: look again soon, then back off.
            out.requeue_after = min(out.requeue_after, FIRST_OBSERVE_AFTER_CREATE)
            # The choice is in status (where to find the instance again after a crash): the
            # instance id and `configuring` may wait for `running`, one write for both.
            out.may_hold_write = all(e.type == "Normal" for e in out.events)
        # One Event per step: when the new instance is already up, "Running" tells both.
        running = next((e for e in out.events if e.reason == "Running"), None)
        if running is None:
            if created_event is not None:
                out.events.append(created_event)
        else:
            out.events[out.events.index(running)] = Event(
                "Normal", "Running", f"{created} created; {running.message}"
            )

    async def _user_data(
        self,
        inp: StepInput,
        out: Outcome,
        config: EmulatorConfigSpec,
        gpu: GpuTier,
        material: AccessMaterial,
    ) -> dict[str, object] | None:
        """The Wolf-host cloud-config for this VM; None (status says why) when the game
        library's credentials Secret cannot be read."""
        library = config.game_library
        credentials = None
        if library is not None and library.credentials_secret_ref is not None:
            secret = library.credentials_secret_ref.name
            if self._secret_reader is not None:
                credentials = await self._secret_reader.read(secret)
            if credentials is None:
                message = (
                    f"EmulatorConfig {config.console_type.value}: gameLibrary."
                    f"credentialsSecretRef {secret!r} is missing or not readable by the "
                    "operator (docs/wolf-host.md)"
                )
                self._enter(inp, out, Reason.GAME_LIBRARY_CREDENTIALS_UNAVAILABLE, message)
                out.requeue_after = self._timings.idle
                return None
        host = self._wolf_host
        return render_user_data(
            WolfHostRequest(
                console=config.console_type,
                gpu=gpu is not GpuTier.NONE,
                wolf_image=host.wolf_image,
                report_url=host.url(REPORT_PATH, inp.ref.namespace, inp.ref.name),
                heartbeat_url=host.url(ACTIVITY_PATH, inp.ref.namespace, inp.ref.name),
                token=material.heartbeat_token,
                library=library,
                library_credentials=credentials,
            )
        )

    def _take_report(self, inp: StepInput, st: GameVMStatus) -> None:
        """Record the VM's configuration report in status (it survives restarts there).

        A report older than the current placement decision belongs to an instance that
        was replaced: ignored.
        """
        report = inp.configuration
        decided = st.decision.decided_at if st.decision else None
        current = st.configuration.reported_at if st.configuration else None
        if report is not None and not (
            (decided is not None and report.received_at < decided)
            or (current is not None and report.received_at <= current)
        ):
            st.configuration = ConfigurationStatus(
                reported_at=report.received_at,
                ready=report.ready,
                games_mounted=report.games_mounted,
                message=report.message,
                address=report.address,
            )
        if st.configuration is not None:
            # Whoever stored the report (this step or the endpoint), the flag follows it.
            st.games_mounted = st.configuration.games_mounted

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
        decision.chosen_gpu_model = None
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
        need = self._needs_provider_address(st)
        instance = await provider.observe(st.provider_instance_id, address=need)
        if instance is None:
            message = (
                f"instance {st.provider_instance_id} no longer exists at {st.provider.value}; "
                "delete the GameVM to clean up"
            )
            self._enter(inp, out, Reason.INSTANCE_LOST, message)
            out.requeue_after = self._timings.idle
            return
        self._apply_instance(st, instance)
        if await self._provisioning_timed_out(inp, out, instance):
            return
        strategy = effective_run_strategy(inp.spec, inp.config)
        want = wants_running(strategy, st.phase, request, st.stop_reason)
        stopped = instance.state in (InstanceState.STOPPED, InstanceState.STOPPING)
        if want and stopped:
            if instance.state is InstanceState.STOPPED:
                try:
                    await provider.start(instance.instance_id)
                except ProviderError as exc:
                    if exc.reason is not ErrorReason.PLACEMENT_LOST:
                        raise
                    await self._replace(inp, out, provider, instance, exc)
                    return
            st.started_at = inp.now
            st.provisioning_since = inp.now
            st.last_activity = inp.now
            self._enter(inp, out, Reason.STARTING, "powering the instance on")
            return
        if not want:
            if st.phase in (VMStatus.STOPPED, VMStatus.ERROR) and stopped:
                # Already off (auto-stopped, halted, or held after a provisioning timeout).
                settled = instance.state is InstanceState.STOPPED
                out.requeue_after = self._timings.idle if settled else self._timings.observe
                return
            reason = (
                Reason.HALTED
                if inp.spec.run_strategy is RunStrategy.HALTED
                else Reason.STOP_REQUESTED
            )
            if st.stop_reason is not None and held(st.stop_reason):
                reason = Reason(st.stop_reason)
            await self._power_off(inp, out, provider, instance, reason, "stop requested")
            return
        await self._observe_running(inp, out, instance)

    async def _replace(
        self,
        inp: StepInput,
        out: Outcome,
        provider: Provider,
        instance: Instance,
        exc: ProviderError,
    ) -> None:
        """A stopped instance lost its hardware: delete it, then place the VM anew.

        Deleted first, so the deterministic name is free and the next create can never
        adopt the dead instance or leave a second one billing.
        """
        st = out.status
        await provider.delete(instance.instance_id)
        self._fall_back(inp, out, exc.reason.value, exc.message)
        if st.decision is not None:
            # Reports from before now came from the deleted instance: `_take_report` drops them.
            st.decision.decided_at = inp.now
        st.provider_instance_id = None
        st.ip_address = None
        st.started_at = None
        st.provisioning_since = inp.now
        st.games_mounted = False
        st.configuration = None
        message = f"instance {instance.instance_id} lost its placement; placing the VM anew"
        self._enter(inp, out, Reason.PLACEMENT_LOST, message)

    async def _provisioning_timed_out(
        self, inp: StepInput, out: Outcome, instance: Instance | None
    ) -> bool:
        """Past maxProvisioningMinutes in creating/configuring: stop the instance, phase error.

        Stopped rather than deleted: compute stops billing at once, the disk is kept for
        a look at what went wrong, and deleting the GameVM deletes the instance as usual.
        """
        st = out.status
        if st.phase not in PROVISIONING_PHASES:
            return False
        since = st.provisioning_since or (st.decision.decided_at if st.decision else None)
        if since is None:
            st.provisioning_since = inp.now
            return False
        limit = provisioning_deadline_seconds(inp.config)
        waited = (inp.now - since).total_seconds()
        if waited < limit:
            out.requeue_after = min(out.requeue_after, max(0.5, limit - waited + 0.1))
            return False
        if instance is None and st.decision and st.decision.chosen_provider:
            # A create may have gone through before a crash: find it by its name.
            provider = self._providers[st.decision.chosen_provider]
            instance = await provider.find(instance_name(inp.ref.uid))
            if instance is not None:
                st.provider_instance_id = instance.instance_id
        if instance is not None and instance.state not in (
            InstanceState.STOPPED,
            InstanceState.STOPPING,
        ):
            assert st.provider is not None  # noqa: S101
            await self._providers[st.provider].stop(instance.instance_id)
        minutes = limit / 60
        message = (
            f"not running after {waited / 60:.1f} min (maxProvisioningMinutes {minutes:g}): "
            f"the instance is stopped; annotate {ANNOTATION_POWER_REQUEST}=start to try again"
        )
        st.started_at = None
        st.provisioning_since = None
        self._enter(inp, out, Reason.PROVISIONING_TIMEOUT, message)
        out.provisioning_timed_out = True
        out.requeue_after = self._timings.idle
        return True

    def _current_report(self, st: GameVMStatus) -> ConfigurationStatus | None:
        """The VM's report, unless it came from an instance replaced since."""
        report = st.configuration
        decided = st.decision.decided_at if st.decision else None
        if report is not None and decided and report.reported_at and report.reported_at < decided:
            return None
        return report

    def _needs_provider_address(self, st: GameVMStatus) -> bool:
        """Whether only the provider can say where the instance is: the VM reported from
        no usable address, or cannot report at all. A VM that will report (its report
        carries its address) needs none before, since it cannot be running before."""
        report = self._current_report(st)
        if report is not None:
            return report.address is None
        return self._wolf_host.public_url is None

    def _with_reported_address(self, st: GameVMStatus, instance: Instance) -> Instance:
        """A running instance the provider gave no address for, at the address its VM
        reported from (its ports as Wolf binds them: a dedicated IP forwards nothing)."""
        report = self._current_report(st)
        if instance.state is not InstanceState.RUNNING or instance.ip_address or report is None:
            return instance
        return replace(instance, ip_address=report.address) if report.address else instance

    async def _observe_running(self, inp: StepInput, out: Outcome, instance: Instance) -> None:
        st = out.status
        located = self._with_reported_address(st, instance)
        from_report = located is not instance
        instance = located
        self._apply_instance(st, instance)
        if instance.state is InstanceState.ERROR:
            self._enter(
                inp, out, Reason.INSTANCE_ERROR, "the provider reports the instance in error"
            )
            out.requeue_after = self._timings.idle
            return
        # A VM that will report needs no address before: it reports where it is from.
        no_address = not instance.ip_address and self._needs_provider_address(st)
        if instance.state is not InstanceState.RUNNING or no_address:
            await self._await_instance(inp, out, instance)
            return
        # A fresh heartbeat is the activity a probe would find: no probe while it is fresh.
        if not self._configured(inp, out, instance) or self._heartbeat_is_fresh(inp, instance):
            await self._check_activity(inp, out, instance, busy=False)
            return
        if not instance.ip_address:
            await self._await_instance(inp, out, instance)
            return
        try:
            instance, wolf = await self._probe(st, instance, from_report=from_report)
        except UnsafeAddressError as exc:
            # Never connect: the VM stays unready (and its deadlines still run) until the
            # provider reports a public address.
            if st.phase not in PROVISIONING_PHASES:
                st.provisioning_since = inp.now
            self._enter(inp, out, Reason.UNSAFE_WOLF_ADDRESS, f"Wolf not probed: {exc}")
            out.requeue_after = self._timings.observe
            await self._check_activity(inp, out, instance, busy=False)
            return
        if wolf is None:
            await self._wolf_silent(inp, out, instance)
            return
        first_time = st.phase is not VMStatus.RUNNING
        if first_time:
            st.last_activity = latest(not_in_future(st.last_activity, inp.now), inp.now)
            decided = st.decision.decided_at if st.decision else None
            if decided is not None:
                out.provisioned_seconds = max(0.0, (inp.now - decided).total_seconds())
        if st.started_at is None:
            st.started_at = inp.now
        st.provisioning_since = None
        if wolf.busy:
            st.last_moonlight_connection = inp.now
        self._enter(
            inp,
            out,
            Reason.RUNNING,
            "running",
            event_message=f"Wolf answers at {instance.ip_address}; ready for Moonlight",
        )
        await self._check_activity(inp, out, instance, busy=wolf.busy)

    def _heartbeat_is_fresh(self, inp: StepInput, instance: Instance) -> bool:
        """A running VM with an address, whose last probe was answered, sent a heartbeat
        within the last activity interval. Its Wolf is probed again once heartbeats stop
        (a Wolf that dies under a VM still sending them shows only then: docs/operations.md)."""
        if (
            inp.status.phase is not VMStatus.RUNNING
            or not instance.ip_address
            or inp.wolf_misses
            or inp.heartbeat is None
        ):
            return False
        age = (inp.now - inp.heartbeat).total_seconds()
        return 0 <= age <= self._timings.activity

    async def _wolf_silent(self, inp: StepInput, out: Outcome, instance: Instance) -> None:
        """Wolf did not answer: configuring, unless a running VM missed fewer than
        WOLF_MISSES_BEFORE_CONFIGURING probes in a row (then nothing changes)."""
        st = out.status
        out.requeue_after = self._timings.observe
        if st.phase is VMStatus.RUNNING:
            out.wolf_misses = inp.wolf_misses + 1
            if out.wolf_misses < WOLF_MISSES_BEFORE_CONFIGURING:
                # Still running as far as status says; look again soon, write nothing.
                await self._check_activity(inp, out, instance, busy=False)
                if st.phase is VMStatus.RUNNING:
                    out.requeue_after = min(out.requeue_after, self._timings.observe)
                return
            # Wolf went silent under a running VM: a new provisioning deadline.
            st.provisioning_since = inp.now
        elif st.phase not in PROVISIONING_PHASES:
            st.provisioning_since = inp.now
        self._enter(
            inp, out, Reason.CONFIGURING, "instance up; waiting for Wolf on its Moonlight HTTP port"
        )
        await self._check_activity(inp, out, instance, busy=False)

    async def _await_instance(self, inp: StepInput, out: Outcome, instance: Instance) -> None:
        """The instance is not up, or the provider has not said where it is yet."""
        st = out.status
        if st.phase not in PROVISIONING_PHASES:
            # E.g. a running VM whose instance reboots: provisioning again, with a deadline.
            st.provisioning_since = inp.now
            self._enter(inp, out, Reason.CONFIGURING, f"instance {instance.state.value}")
        st.message = f"instance {instance.state.value}"
        out.requeue_after = self._timings.observe
        await self._check_activity(inp, out, instance, busy=False)

    async def _probe(
        self, st: GameVMStatus, instance: Instance, *, from_report: bool
    ) -> tuple[Instance, WolfStatus | None]:
        """Wolf's status at the instance's address. When that address is the one the VM
        reported from and nothing answers there although the VM said Wolf runs (NAT, a
        provider that forwards ports, an instance started again), the provider is asked
        where it is (one look per start: the budget keeps the answer while it runs)."""
        assert instance.ip_address is not None  # noqa: S101  # checked by the caller
        wolf = await self._wolf.probe(instance.ip_address, instance.wolf_http_port)
        if wolf is not None or not from_report:
            return instance, wolf
        assert st.provider is not None  # noqa: S101  # an instance has a provider
        looked = await self._providers[st.provider].observe(instance.instance_id, address=True)
        if (
            looked is None
            or looked.state is not InstanceState.RUNNING
            or not looked.ip_address
            or (looked.ip_address, looked.wolf_http_port)
            == (instance.ip_address, instance.wolf_http_port)
        ):
            return instance, None
        self._apply_instance(st, looked)
        return looked, await self._wolf.probe(looked.ip_address, looked.wolf_http_port)

    def _configured(self, inp: StepInput, out: Outcome, instance: Instance) -> bool:
        """Whether the VM is configured (by the provider, or as its report says); else the
        VM stays `configuring` with the reason in status."""
        st = out.status
        report = st.configuration
        decided = st.decision.decided_at if st.decision else None
        if report is not None and decided and report.reported_at and report.reported_at < decided:
            report = None  # from an instance that was replaced since
        if instance.configured or (report is not None and report.ready):
            return True
        if st.phase not in PROVISIONING_PHASES:
            st.provisioning_since = inp.now
        if report is not None:
            reason = Reason.CONFIGURATION_FAILED
            message = f"the VM reported a failed configuration: {report.message or '-'}"
        elif self._wolf_host.public_url is None:
            reason = Reason.OPERATOR_URL_MISSING
            message = (
                "instance up; it cannot report its configuration: set GAMEVM_PUBLIC_URL "
                "to the URL VMs reach the operator at"
            )
        else:
            reason = Reason.AWAITING_CONFIGURATION
            message = "instance up; installing the GPU driver, Docker and Wolf"
        self._enter(inp, out, reason, message)
        out.requeue_after = self._timings.observe
        return False

    async def _check_activity(
        self, inp: StepInput, out: Outcome, instance: Instance, *, busy: bool
    ) -> None:
        """Idle and session limits, in every phase where the instance bills."""
        st = out.status
        annotated = not_in_future(
            _parse_time(inp.annotations.get(ANNOTATION_LAST_ACTIVITY)), inp.now
        )
        st.last_activity = latest(
            not_in_future(st.last_activity, inp.now),
            inp.now if busy else None,
            not_in_future(inp.heartbeat, inp.now),
            annotated,
        )
        if st.phase is VMStatus.RUNNING:
            out.requeue_after = self._timings.activity
        if st.started_at is None:
            return
        strategy = effective_run_strategy(inp.spec, inp.config)
        timeout: float | None = None
        if strategy is RunStrategy.MANUAL:
            timeout = float(inp.spec.auto_stop_timeout)
            if st.phase in PROVISIONING_PHASES:
                # Nobody can play before Wolf answers: while provisioning, idleness stops
                # the VM only past both the idle timeout and the provisioning deadline.
                timeout = max(timeout, provisioning_deadline_seconds(inp.config))
        verdict = auto_stop_verdict(
            now=inp.now,
            started_at=st.started_at,
            last_activity=st.last_activity,
            auto_stop_timeout=timeout,
            max_session_hours=session_cap_hours(inp.spec, inp.config),
        )
        if verdict.stop is None:
            remaining = verdict.idle_limit - verdict.idle_seconds
            if st.phase is VMStatus.RUNNING:
                # Sparse far from the idle deadline (bench/README.md, idle CPU).
                out.requeue_after = activity_check_delay(
                    remaining,
                    self._timings.activity,
                    self._timings.activity_max,
                    spread=shard_of(inp.ref.uid, SPREAD_STEPS) / SPREAD_STEPS,
                )
            cap = session_cap_hours(inp.spec, inp.config)
            if cap is not None:
                remaining = min(remaining, cap * 3600 - verdict.session_seconds)
            # The step at the deadline itself probes first: activity then keeps the VM.
            out.requeue_after = max(1.0, min(out.requeue_after, remaining + 0.5))
            return
        assert st.provider is not None  # noqa: S101
        await self._power_off(
            inp,
            out,
            self._providers[st.provider],
            instance,
            Reason(verdict.stop.value),
            verdict.message,
        )
        out.auto_stopped = verdict.stop

    async def _power_off(
        self,
        inp: StepInput,
        out: Outcome,
        provider: Provider,
        instance: Instance,
        reason: Reason,
        message: str,
    ) -> None:
        st = out.status
        if instance.state not in (InstanceState.STOPPED, InstanceState.STOPPING):
            await provider.stop(instance.instance_id)
        st.started_at = None
        st.provisioning_since = None
        self._enter(
            inp, out, reason, f"stopped: {message}", event_message=f"{reason.value}: {message}"
        )
        if reason in (Reason.IDLE, Reason.MAX_SESSION):
            # The AutoStopped condition says why in its own words (not "stopped: ...").
            st.conditions = [
                c.model_copy(update={"message": message}) if c.type == "AutoStopped" else c
                for c in st.conditions
            ]
        out.requeue_after = self._timings.idle

    # -- shared ---------------------------------------------------------------------------

    def _provider_failed(self, inp: StepInput, out: Outcome, exc: ProviderError) -> None:
        st = out.status
        creating = st.provider_instance_id is None and st.decision and st.decision.chosen_provider
        if exc.reason is ErrorReason.INSUFFICIENT_BALANCE:
            # Account-wide: every placement of this provider fails the same way, and only a
            # person can fix it. No fallback through its placements, no retry storm: the
            # create is tried again after the idle interval (a top-up resumes it).
            message = f"{exc}; top up the provider account"
            self._enter(inp, out, Reason.PROVIDER_FAILED, message, detail=exc.reason.value)
            out.requeue_after = self._timings.idle
            return
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
            message = f"provider error, retrying in {delay:.0f} s: {exc}"
            event = self._enter(
                inp, out, Reason.PROVIDER_RETRYING, message, detail=exc.reason.value, post=False
            )
            if inp.retries == 0 and event is not None:
                out.events.append(event)
            return
        self._enter(inp, out, Reason.PROVIDER_FAILED, str(exc), detail=exc.reason.value)
        out.requeue_after = self._timings.idle

    def _enter(
        self,
        inp: StepInput,
        out: Outcome,
        reason: Reason,
        message: str,
        *,
        event_message: str | None = None,
        detail: str | None = None,
        post: bool = True,
    ) -> Event | None:
        """Apply one lifecycle transition; its Event is queued unless `post` is False."""
        event = enter(
            out.status,
            reason,
            message,
            now=inp.now,
            generation=inp.ref.generation,
            event_message=event_message,
            detail=detail,
        )
        if event is not None and post:
            out.events.append(event)
        return event

    @staticmethod
    def _apply_instance(st: GameVMStatus, instance: Instance) -> None:
        st.ip_address = instance.ip_address
        # What the provider reports: a port forward's external port, else the port itself.
        st.wolf_port = instance.external_port(WOLF_PORT)
        st.ssh_port = instance.external_port(SSH_PORT)
        if instance.region:
            st.region = instance.region
        if instance.price_per_hour is not None:
            st.cost_per_hour = round(instance.price_per_hour, 4)
        st.cloudypad_configured = instance.configured
        st.provider_metadata = dict(instance.metadata)
        if instance.ports:
            # Kept so a restarted operator can reach Wolf without asking the provider again.
            st.provider_metadata[PORTS_METADATA_KEY] = format_ports(instance.ports)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
