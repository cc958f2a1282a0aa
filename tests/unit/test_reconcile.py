"""The reconcile step machine with plain in-memory fakes (the e2e tests use the real stack)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gamevm.models import (
    CloudProvider,
    EmulatorConfigSpec,
    GameVMSpec,
    GameVMStatus,
    GpuTier,
    RunStrategy,
    VMPreset,
    VMStatus,
)
from gamevm.models.names import ANNOTATION_LAST_ACTIVITY, ANNOTATION_POWER_REQUEST
from gamevm.providers.base import (
    CreateSpec,
    ErrorReason,
    Instance,
    InstanceState,
    Offer,
    OfferRequest,
    ProviderError,
)
from gamevm.providers.wolf import WolfStatus
from gamevm.services.access import AccessMaterial, KeyRing
from gamevm.services.configuration import ConfigurationReport, WolfHostConfig, already_stored
from gamevm.services.ports import Selection, VMRef
from gamevm.services.reconcile import Outcome, Reconciler, StepInput, Timings, instance_name

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MASTER = b"k" * 32


def _offer(
    provider: CloudProvider = CloudProvider.TENSORDOCK, placement: str = "hn-dallas"
) -> Offer:
    return Offer(
        provider=provider,
        region="us-dallas",
        placement_id=placement,
        location_label="Dallas, TX, US",
        latitude=32.78,
        longitude=-96.8,
        price_per_hour=0.55,
        vcpu=8,
        ram_gb=16,
        gpu_tier=GpuTier.HIGH_END,
    )


class FakeProvider:
    def __init__(self, name: CloudProvider) -> None:
        self._name = name
        self.instances: dict[str, Instance] = {}
        self.creates = 0
        self.fail_create: ProviderError | None = None
        self.fail_start: ProviderError | None = None
        self.user_data: list[object] = []
        self.deleted: list[str] = []

    @property
    def name(self) -> CloudProvider:
        return self._name

    async def offers(self, request: OfferRequest) -> list[Offer]:
        return [_offer(self._name)]

    async def find(self, name: str) -> Instance | None:
        return next((i for i in self.instances.values() if i.name == name), None)

    async def create(self, spec: CreateSpec) -> Instance:
        if self.fail_create is not None:
            raise self.fail_create
        existing = await self.find(spec.name)
        if existing is not None:  # the Protocol: create adopts an instance of that name
            return existing
        self.creates += 1
        self.user_data.append(spec.user_data)
        inst = Instance(
            instance_id=f"i-{self.creates}",
            name=spec.name,
            state=InstanceState.RUNNING,
            ip_address="127.0.0.1",
            ports={47989: 40000},
        )
        self.instances[inst.instance_id] = inst
        return inst

    async def observe(self, instance_id: str, *, address: bool = True) -> Instance | None:
        return self.instances.get(instance_id)

    async def start(self, instance_id: str) -> None:
        if self.fail_start is not None:
            raise self.fail_start
        self.instances[instance_id] = replace(
            self.instances[instance_id], state=InstanceState.RUNNING
        )

    async def stop(self, instance_id: str) -> None:
        self.instances[instance_id] = replace(
            self.instances[instance_id], state=InstanceState.STOPPED
        )

    async def delete(self, instance_id: str) -> None:
        self.deleted.append(instance_id)
        self.instances.pop(instance_id, None)

    async def aclose(self) -> None:
        return None


class FakeSelector:
    def __init__(self, offers: list[Offer]) -> None:
        self.offers = offers

    async def select(
        self,
        spec: GameVMSpec,
        config: EmulatorConfigSpec,
        exclude: frozenset[str],
        *,
        tolerate_unavailable: bool = False,
    ) -> Selection:
        for offer in self.offers:
            if f"{offer.provider}/{offer.placement_id}" not in exclude:
                return Selection(chosen=offer, preset=VMPreset.PREMIUM)
        return Selection(chosen=None, preset=None, summary="all rejected")

    async def offer_for(
        self,
        spec: GameVMSpec,
        config: EmulatorConfigSpec,
        provider: str,
        placement: str,
        gpu_model: str | None = None,
    ) -> Offer | None:
        return next(
            (o for o in self.offers if o.provider == provider and o.placement_id == placement), None
        )


class FakeSecrets:
    """Like the API server: a second create of the same name is a conflict (False)."""

    def __init__(self) -> None:
        self.created: dict[str, AccessMaterial] = {}
        self.calls = 0

    async def create(self, ref: VMRef, secret_name: str, material: AccessMaterial) -> bool:
        self.calls += 1
        if secret_name in self.created:
            return False
        self.created[secret_name] = material
        return True


class FakeWolf:
    def __init__(self) -> None:
        self.status: WolfStatus | None = WolfStatus(busy=False, state="SUNSHINE_SERVER_FREE")

    async def probe(self, host: str, port: int) -> WolfStatus | None:
        return self.status


CONFIG = EmulatorConfigSpec.model_validate(
    {
        "consoleType": "switch",
        "preferredProviders": [
            {"provider": "tensordock", "priority": 1},
            {"provider": "cloudypad_gcp", "priority": 2},
        ],
        "defaultPreset": "premium",
        "minCpu": 8,
        "minRamGb": 16,
        "requiresGpu": True,
        "maxSessionHours": 4,
    }
)


class World:
    def __init__(self) -> None:
        self.td = FakeProvider(CloudProvider.TENSORDOCK)
        self.gcp = FakeProvider(CloudProvider.CLOUDYPAD_GCP)
        self.selector = FakeSelector(
            [_offer(), _offer(CloudProvider.CLOUDYPAD_GCP, "us-central1-a")]
        )
        self.secrets = FakeSecrets()
        self.wolf = FakeWolf()
        self.reconciler = Reconciler(
            providers={CloudProvider.TENSORDOCK: self.td, CloudProvider.CLOUDYPAD_GCP: self.gcp},
            selector=self.selector,
            secrets=self.secrets,
            wolf=self.wolf,
            keys=KeyRing("default", {"default": MASTER}),
            timings=Timings(),
            wolf_host=WolfHostConfig(public_url="https://operator.example.com"),
        )
        # The VM's user data reports success (the e2e tests run the real report path).
        self.report: ConfigurationReport | None = ConfigurationReport(
            received_at=T0, ready=True, games_mounted=False, message="configured"
        )
        self.status = GameVMStatus()
        self.spec = GameVMSpec.model_validate({"consoleType": "switch", "autoStopTimeout": 900})
        self.annotations: dict[str, str] = {}
        self.now = T0
        self.config: EmulatorConfigSpec | None = CONFIG
        self.generation = 1
        self.wolf_misses = 0

    async def step(self, heartbeat: datetime | None = None) -> Outcome:
        out = await self.reconciler.step(
            StepInput(
                ref=VMRef("ns", "vm", "0b9e7c1a-1111-2222-3333-444455556666", self.generation),
                spec=self.spec,
                status=self.status,
                annotations=self.annotations,
                config=self.config,
                now=self.now,
                heartbeat=heartbeat,
                configuration=self.report,
                wolf_misses=self.wolf_misses,
            )
        )
        self.status = out.status
        self.wolf_misses = out.wolf_misses
        if out.consume_power_request:
            self.annotations.pop(ANNOTATION_POWER_REQUEST, None)
        return out

    async def until_running(self) -> None:
        for _ in range(5):
            await self.step()
            if self.status.phase is VMStatus.RUNNING:
                return
        raise AssertionError(f"not running: {self.status}")


async def test_create_records_choice_before_create_then_runs() -> None:
    w = World()
    out = await w.step()
    assert w.status.phase is VMStatus.CREATING
    assert w.status.decision is not None
    assert w.status.decision.chosen_provider is CloudProvider.TENSORDOCK
    assert w.td.creates == 0, "the choice is written to status before any create"
    assert out.requeue_after == 0
    await w.step()
    assert w.td.creates == 1
    assert w.status.provider_instance_id == "i-1"
    assert w.status.phase is VMStatus.RUNNING
    assert w.status.gaming_environment_ready
    assert w.status.access_secret_name == "vm-access"
    assert (w.status.wolf_port, w.status.ssh_port) == (47999, 22), "no forwards for them"
    w.td.instances["i-1"] = replace(w.td.instances["i-1"], ports={47989: 40000, 22: 40022})
    await w.step()
    assert w.status.ssh_port == 40022, "the provider's port forward"
    ready = next(c for c in w.status.conditions if c.type == "Ready")
    assert ready.status == "True"


async def test_restart_after_create_adopts_instance() -> None:
    w = World()
    await w.step()
    decided = w.status.model_copy(deep=True)
    await w.step()
    # Crash: the instance id never reached status; the next operator resumes from the decision.
    w.status = decided
    await w.step()
    assert w.td.creates == 1
    assert w.status.provider_instance_id == "i-1"


async def test_no_capacity_falls_back_to_next_candidate() -> None:
    w = World()
    w.td.fail_create = ProviderError(ErrorReason.NO_CAPACITY, "sold out", retryable=False)
    await w.step()
    out = await w.step()
    assert any(e.reason == "ProviderFallback" for e in out.events)
    await w.step()  # selects the next candidate
    assert w.status.provider is CloudProvider.CLOUDYPAD_GCP
    await w.step()
    assert w.gcp.creates == 1
    assert w.status.attempted_providers == [CloudProvider.TENSORDOCK, CloudProvider.CLOUDYPAD_GCP]


async def test_retryable_error_backs_off_without_fallback() -> None:
    w = World()
    await w.step()
    w.td.fail_create = ProviderError(ErrorReason.SERVER_ERROR, "503", retryable=True, retry_after=7)
    out = await w.step()
    assert out.retryable_failure
    assert out.requeue_after >= 7
    assert w.status.decision is not None
    assert w.status.decision.chosen_provider is CloudProvider.TENSORDOCK


async def test_idle_vm_auto_stops_and_busy_keeps_it() -> None:
    w = World()
    await w.until_running()
    w.wolf.status = WolfStatus(busy=True, state="SUNSHINE_SERVER_BUSY")
    w.now = T0 + timedelta(seconds=1000)
    await w.step()
    assert w.status.phase is VMStatus.RUNNING
    assert w.status.last_moonlight_connection == w.now
    w.wolf.status = WolfStatus(busy=False, state="SUNSHINE_SERVER_FREE")
    w.now += timedelta(seconds=901)
    out = await w.step()
    assert w.status.phase is VMStatus.STOPPED
    assert w.status.stop_reason == "Idle"
    assert out.auto_stopped == "Idle"
    assert w.td.instances["i-1"].state is InstanceState.STOPPED


async def test_heartbeat_and_annotation_count_as_activity() -> None:
    w = World()
    await w.until_running()
    w.now = T0 + timedelta(seconds=800)
    await w.step(heartbeat=w.now)
    w.now = T0 + timedelta(seconds=1600)
    w.annotations[ANNOTATION_LAST_ACTIVITY] = (T0 + timedelta(seconds=1500)).isoformat()
    await w.step()
    assert w.status.phase is VMStatus.RUNNING
    assert w.status.last_activity == T0 + timedelta(seconds=1500)


async def test_max_session_stops_even_when_busy() -> None:
    w = World()
    await w.until_running()
    w.wolf.status = WolfStatus(busy=True, state="SUNSHINE_SERVER_BUSY")
    w.now = T0 + timedelta(hours=4, seconds=1)
    await w.step()
    assert w.status.phase is VMStatus.STOPPED
    assert w.status.stop_reason == "MaxSessionExceeded"


async def test_power_requests_and_run_strategies() -> None:
    w = World()
    await w.until_running()
    w.annotations[ANNOTATION_POWER_REQUEST] = "stop"
    await w.step()
    assert w.status.phase is VMStatus.STOPPED
    assert ANNOTATION_POWER_REQUEST not in w.annotations
    await w.step()
    assert w.status.phase is VMStatus.STOPPED, "Manual keeps a stopped VM stopped"
    w.annotations[ANNOTATION_POWER_REQUEST] = "start"
    await w.until_running()
    w.spec = w.spec.model_copy(update={"run_strategy": RunStrategy.HALTED})
    await w.step()
    assert w.status.phase is VMStatus.STOPPED
    assert w.status.stop_reason == "RunStrategyHalted"
    w.spec = w.spec.model_copy(update={"run_strategy": RunStrategy.ALWAYS})
    await w.until_running()
    w.now = T0 + timedelta(hours=3)
    await w.step()
    assert w.status.phase is VMStatus.RUNNING, "Always is never stopped as idle"


async def test_halted_creates_nothing() -> None:
    w = World()
    w.spec = w.spec.model_copy(update={"run_strategy": RunStrategy.HALTED})
    await w.step()
    assert w.status.phase is VMStatus.STOPPED
    assert w.td.creates == 0


def test_instance_name_is_deterministic() -> None:
    uid = "0b9e7c1a-1111-2222-3333-444455556666"
    assert instance_name(uid) == instance_name(uid)
    assert instance_name(uid) != instance_name(uid[::-1])
    assert len(instance_name(uid)) <= 32


@pytest.mark.parametrize("value", ["reboot", ""])
async def test_invalid_power_request_is_reported_and_consumed(value: str) -> None:
    w = World()
    w.annotations[ANNOTATION_POWER_REQUEST] = value
    out = await w.step()
    assert out.consume_power_request
    assert any(e.reason == "InvalidPowerRequest" for e in out.events)


async def test_restart_with_the_placement_gone_adopts_instead_of_falling_back() -> None:
    w = World()
    await w.step()
    decided = w.status.model_copy(deep=True)
    await w.step()
    w.status = decided
    w.selector.offers = []  # the chosen placement is no longer offered
    await w.step()
    assert w.td.creates == 1
    assert w.gcp.creates == 0
    assert w.status.provider_instance_id == "i-1"


async def test_running_needs_the_configuration_report_and_wolf() -> None:
    w = World()
    w.report = None
    for _ in range(3):
        await w.step()
    assert w.status.phase is VMStatus.CONFIGURING, "Wolf answers, but no report yet"
    assert not w.status.gaming_environment_ready
    ready = next(c for c in w.status.conditions if c.type == "Ready")
    assert ready.reason == "AwaitingConfiguration"
    w.report = ConfigurationReport(
        received_at=T0, ready=True, games_mounted=True, message="configured"
    )
    await w.step()
    assert w.status.phase is VMStatus.RUNNING
    assert w.status.games_mounted
    assert not w.status.cloudypad_configured
    assert w.status.configuration is not None
    assert w.status.configuration.reported_at == T0
    # The report lives in status: a restarted operator (no report in memory) keeps it.
    w.report = None
    await w.step()
    assert w.status.phase is VMStatus.RUNNING


async def test_a_report_alone_is_not_running_without_wolf() -> None:
    w = World()
    w.wolf.status = None
    for _ in range(3):
        await w.step()
    assert w.status.phase is VMStatus.CONFIGURING
    ready = next(c for c in w.status.conditions if c.type == "Ready")
    assert ready.reason == "Configuring"


async def test_a_failed_configuration_is_shown() -> None:
    w = World()
    w.report = ConfigurationReport(
        received_at=T0, ready=False, games_mounted=False, message="failed steps: wolf"
    )
    await w.step()
    out = await w.step()
    assert w.status.phase is VMStatus.CONFIGURING
    assert "failed steps: wolf" in (w.status.message or "")
    assert any(e.reason == "ConfigurationFailed" for e in out.events)  # type: ignore[attr-defined]


async def test_create_sends_user_data_with_the_report_url() -> None:
    w = World()
    await w.until_running()
    (user_data,) = w.td.user_data
    assert isinstance(user_data, dict)
    env = next(f for f in user_data["write_files"] if f["path"] == "/etc/gamevm/gamevm.env")
    assert (
        "GAMEVM_REPORT_URL=https://operator.example.com/v1/gamevms/ns/vm/configuration"
        in env["content"]
    )


async def test_insufficient_balance_is_a_permanent_condition_not_a_fallback() -> None:
    w = World()
    w.td.fail_create = ProviderError(
        ErrorReason.INSUFFICIENT_BALANCE, "need at least $1", retryable=False
    )
    await w.step()
    out = await w.step()
    assert w.status.phase is VMStatus.ERROR
    ready = next(c for c in w.status.conditions if c.type == "Ready")
    assert ready.reason == "InsufficientBalance"
    assert not out.retryable_failure  # type: ignore[attr-defined]
    assert out.requeue_after == Timings().idle  # type: ignore[attr-defined]
    assert w.status.decision is not None
    assert w.status.decision.failed_placements == [], "no fallback through placements"
    assert w.gcp.creates == 0
    w.td.fail_create = None  # topped up: the next attempt creates
    await w.step()
    assert w.td.creates == 1


async def test_placement_lost_on_start_deletes_and_places_anew() -> None:
    w = World()
    w.spec = GameVMSpec.model_validate({"consoleType": "switch", "runStrategy": "Always"})
    await w.until_running()
    first = w.status.provider_instance_id
    assert first is not None
    await w.td.stop(first)
    w.td.fail_start = ProviderError(
        ErrorReason.PLACEMENT_LOST, "GPU taken while stoppeddisassociated", retryable=False
    )
    w.now = T0 + timedelta(hours=1)
    out = await w.step()
    assert w.td.deleted == [first], "the dead instance is deleted before anything else"
    assert w.status.provider_instance_id is None
    assert w.status.phase is VMStatus.CREATING
    assert w.status.configuration is None
    assert w.status.decision is not None
    assert w.status.decision.failed_placements == ["tensordock/hn-dallas"]
    assert any(e.reason == "ProviderFallback" for e in out.events)  # type: ignore[attr-defined]
    w.td.fail_start = None
    for _ in range(3):
        await w.step()
    assert w.status.provider is CloudProvider.CLOUDYPAD_GCP
    assert w.status.phase is VMStatus.CONFIGURING, "the old instance's report does not count"
    w.report = ConfigurationReport(
        received_at=w.now + timedelta(seconds=1), ready=True, games_mounted=False, message="ok"
    )
    await w.step()
    assert w.status.phase is VMStatus.RUNNING
    assert w.td.instances == {}


class ListLikeProvider(FakeProvider):
    """Like TensorDock behind the budget: the IP only for callers that ask for it."""

    def __init__(self) -> None:
        super().__init__(CloudProvider.TENSORDOCK)
        self.address_looks = 0

    async def create(self, spec: CreateSpec) -> Instance:
        created = await super().create(spec)
        return replace(created, ip_address=None, ports={})  # like TensorDock's answer

    async def observe(self, instance_id: str, *, address: bool = True) -> Instance | None:
        instance = self.instances.get(instance_id)
        if instance is None or address:
            self.address_looks += int(instance is not None)
            return instance
        return replace(instance, ip_address=None, ports={})


class WolfAt(FakeWolf):
    """Wolf answers at one host:port only."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.where = (host, port)
        self.probed: list[tuple[str, int]] = []

    async def probe(self, host: str, port: int) -> WolfStatus | None:
        self.probed.append((host, port))
        return self.status if (host, port) == self.where else None


def _list_like_world(wolf: FakeWolf) -> World:
    w = World()
    w.td = ListLikeProvider()
    w.wolf = wolf
    w.reconciler = Reconciler(
        providers={CloudProvider.TENSORDOCK: w.td, CloudProvider.CLOUDYPAD_GCP: w.gcp},
        selector=w.selector,
        secrets=w.secrets,
        wolf=wolf,
        keys=KeyRing("default", {"default": MASTER}),
        timings=Timings(),
        wolf_host=WolfHostConfig(public_url="https://operator.example.com"),
    )
    return w


async def test_wolf_is_probed_at_the_reported_address_without_asking_the_provider() -> None:
    wolf = WolfAt("8.8.4.4", 47989)
    w = _list_like_world(wolf)
    w.report = None
    await w.step()
    await w.step()
    assert w.status.phase is VMStatus.CONFIGURING
    assert w.status.ip_address is None, "no report yet: no address, and none asked for"
    w.report = ConfigurationReport(
        received_at=T0, ready=True, games_mounted=False, message="ok", address="8.8.4.4"
    )
    await w.until_running()
    assert w.status.ip_address == "8.8.4.4"
    assert w.status.configuration is not None
    assert w.status.configuration.address == "8.8.4.4"
    assert w.td.address_looks == 0


async def test_the_provider_is_asked_when_the_report_has_no_address_or_wolf_is_not_there() -> None:
    # The provider's own address is where Wolf is (the create put it at 127.0.0.1:40000).
    w = _list_like_world(WolfAt("127.0.0.1", 40000))
    w.report = ConfigurationReport(received_at=T0, ready=True, games_mounted=False, message="ok")
    await w.until_running()
    assert w.status.ip_address == "127.0.0.1"
    assert w.td.address_looks >= 1
    # Reported from an address where nothing answers (NAT): asked once, then running.
    wolf = WolfAt("127.0.0.1", 40000)
    w = _list_like_world(wolf)
    w.report = ConfigurationReport(
        received_at=T0, ready=True, games_mounted=False, message="ok", address="8.8.4.4"
    )
    await w.until_running()
    assert wolf.probed[0] == ("8.8.4.4", 47989)
    assert w.status.ip_address == "127.0.0.1"
    assert w.status.wolf_port == 47999


async def test_only_the_write_after_a_create_may_wait() -> None:
    """The choice is written at once (it is what finds the instance after a crash); the
    new instance's `configuring` may wait for `running`; nothing else waits."""
    w = World()
    w.report = None
    out = await w.step()
    assert w.status.phase is VMStatus.CREATING
    assert not out.may_hold_write, "the choice reaches status before any create"
    out = await w.step()
    assert w.status.phase is VMStatus.CONFIGURING
    assert w.status.provider_instance_id == "i-1"
    assert out.may_hold_write
    out = await w.step()
    assert not out.may_hold_write, "only the create's own step"


def test_a_resent_report_is_already_stored() -> None:
    stored = GameVMStatus.model_validate(
        {
            "decision": {"decidedAt": "2026-11-26T12:00:00Z"},
            "configuration": {
                "reportedAt": "2026-11-26T12:01:00Z",
                "ready": True,
                "gamesMounted": False,
                "message": "configured",
            },
        }
    )
    again = ConfigurationReport(
        received_at=T0 + timedelta(minutes=2), ready=True, games_mounted=False, message="configured"
    )
    assert already_stored(stored, again)
    assert not already_stored(stored, replace(again, ready=False)), "news is written"
    assert not already_stored(GameVMStatus(), again)
    # A report stored before the current choice came from an instance since replaced.
    assert stored.decision is not None
    stored.decision.decided_at = T0 + timedelta(minutes=5)
    assert not already_stored(stored, again)
