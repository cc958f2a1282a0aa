"""CloudyPad adapter: one class for cloudypad_gcp/aws/azure/paperspace/scaleway.

Drives the CloudyPad CLI (`settings.cloudypad_cli`) through asyncio subprocesses, never
blocking the event loop and never prompting (stdin is /dev/null, `--yes`, every option
the cloud would ask for, no TTY). The subprocess environment and the credential files
are built by `gamevm.providers.cloudypad.environment`; nothing else of the operator's
environment (its own secrets included) leaks into it. Every run holds one slot of a
semaphore shared by all CloudyPad providers (`settings.cloudypad_max_concurrent_runs`):
each run loads every cloud SDK and most run Pulumi.

Only the fields `cli.parse_get` picks leave a run's output: `get` prints the instance's
SSH private key. Error messages are the CLI's error chain, redacted.

`instance_id` is the instance name: CloudyPad addresses instances by name only.
"""

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gamevm.models.enums import CloudProvider, GpuTier
from gamevm.providers.base import (
    CreateSpec,
    ErrorReason,
    Instance,
    Offer,
    OfferRequest,
    ProviderError,
)
from gamevm.providers.cloudypad.catalog import CLOUD_OF_PROVIDER, Cloud, Machine, cloudypad_catalog
from gamevm.providers.cloudypad.cli import (
    cli_error,
    create_args,
    destroy_args,
    is_already,
    is_not_found,
    is_provisioned,
    parse_get,
    parse_json_output,
    power_args,
    redact,
    summary,
)
from gamevm.providers.cloudypad.environment import CliEnvironment

log = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENT_RUNS = 4


@dataclass(frozen=True)
class CliResult:
    """Exit code and output of one CLI run."""

    exit_code: int | None
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """Exit code 0."""
        return self.exit_code == 0


class CloudyPadProvider:
    """One CloudyPad cloud."""

    def __init__(
        self,
        provider: CloudProvider,
        *,
        cli: str,
        credentials: Mapping[str, str],
        timeout: float,
        power_timeout: int,
        home: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        cloud: Cloud | None = None,
        runs: asyncio.Semaphore | None = None,
        eur_usd_rate: float | None = None,
    ) -> None:
        if provider not in CLOUD_OF_PROVIDER:
            raise ValueError(f"{provider} is not a CloudyPad provider")
        self._provider = provider
        self._cloud = cloud or cloudypad_catalog()[CLOUD_OF_PROVIDER[provider]]
        self._cli = cli
        self._timeout = timeout
        self._power_timeout = power_timeout
        self._flag_values = dict(credentials)
        self._environment = CliEnvironment(
            cloud=self._cloud.name,
            credentials=dict(credentials),
            home=home,
            extra_env=dict(extra_env or {}),
        )
        self._prepared = asyncio.Lock()
        self._runs = runs or asyncio.Semaphore(DEFAULT_MAX_CONCURRENT_RUNS)
        self._eur_usd_rate = eur_usd_rate

    @property
    def name(self) -> CloudProvider:
        """Which CloudProvider this adapter serves."""
        return self._provider

    async def aclose(self) -> None:
        """Remove the private folder (credential files) of the CLI runs."""
        await asyncio.to_thread(self._environment.remove)

    # -- subprocess ------------------------------------------------------------------

    async def _prepare(self) -> CliEnvironment:
        async with self._prepared:
            if self._environment.private_dir is None:
                await asyncio.to_thread(self._environment.prepare)
        return self._environment

    async def _run(self, args: Sequence[str], what: str, limit: float | None = None) -> CliResult:
        limit = limit or self._timeout
        environment = await self._prepare()
        async with self._runs:
            root = await asyncio.to_thread(environment.run_root)
            try:
                return await self._run_in(root, args, what, limit)
            finally:
                await asyncio.to_thread(environment.remove_run_root, root)

    async def _run_in(self, root: Path, args: Sequence[str], what: str, limit: float) -> CliResult:
        env = {**self._environment.env, "CLOUDYPAD_HOME": str(root)}
        try:
            process = await asyncio.create_subprocess_exec(
                self._cli,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise ProviderError(
                ErrorReason.CLI_FAILED,
                f"CloudyPad {what}: cannot run {self._cli!r}: {exc.strerror or exc}",
                retryable=False,
            ) from exc
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), limit)
        except TimeoutError as exc:
            await _kill(process)
            raise ProviderError(
                ErrorReason.TIMEOUT,
                f"CloudyPad {what}: no answer in {limit:.0f}s",
                retryable=True,
            ) from exc
        except asyncio.CancelledError:
            # The handler was cancelled (e.g. operator shutdown): leave no orphan CLI.
            await asyncio.shield(_kill(process))
            raise
        return CliResult(
            exit_code=process.returncode,
            stdout=stdout.decode(errors="replace"),
            stderr=stderr.decode(errors="replace"),
        )

    def _message(self, result: CliResult) -> str:
        return redact(summary(result.stdout, result.stderr), self._environment.secrets)

    def _error(self, what: str, result: CliResult) -> ProviderError:
        return cli_error(what, result.exit_code, self._message(result))

    # -- Provider protocol -----------------------------------------------------------

    def _usd_per_hour(self, machine: Machine) -> float:
        if machine.currency == "USD":
            return machine.price_per_hour
        if machine.currency == "EUR" and self._eur_usd_rate:
            return round(machine.price_per_hour * self._eur_usd_rate, 4)
        raise ProviderError(
            ErrorReason.UNSUPPORTED,
            f"{self._provider}: prices are in {machine.currency} and no conversion rate to "
            "USD is set (cloudypad_eur_usd_rate)",
            retryable=False,
        )

    async def offers(self, request: OfferRequest) -> list[Offer]:
        """One offer per region from the bundled table (USD/h); none for GPU-less presets."""
        machine = self._cloud.machines.get(request.preset)
        if request.resources.gpu is GpuTier.NONE or machine is None:
            return []
        price = self._usd_per_hour(machine)
        offers = []
        for region in self._cloud.regions:
            details = {"machine_type": machine.machine_type, "cli_region": region.cli_value}
            if region.zone:
                details["zone"] = region.zone
            if machine.gpu_type:
                details["gpu_type"] = machine.gpu_type
            if machine.currency != "USD":
                details["list_price"] = f"{machine.price_per_hour} {machine.currency}/h"
            offers.append(
                Offer(
                    provider=self._provider,
                    region=region.region,
                    placement_id=region.zone or region.region,
                    location_label=region.label,
                    latitude=region.latitude,
                    longitude=region.longitude,
                    price_per_hour=price,
                    vcpu=machine.vcpu,
                    ram_gb=machine.ram_gb,
                    gpu_tier=request.resources.gpu,
                    gpu_model=machine.gpu_model,
                    # CloudyPad cannot list capacity: lack of it shows up as NoCapacity
                    # from `create`, and the reconcile falls back to the next offer.
                    available=1,
                    details=details,
                )
            )
        return offers

    async def find(self, name: str) -> Instance | None:
        """The provisioned instance named `name`, or None.

        Inputs-only state (a create that never finished: crash, no capacity) counts as
        absent, so the caller creates again; `observe` still reports it as PENDING with
        metadata provisioned=false.
        """
        instance = await self.observe(name)
        return instance if instance is not None and is_provisioned(instance) else None

    async def observe(self, instance_id: str, *, address: bool = True) -> Instance | None:
        """`get <name>` parsed; None when the instance does not exist (`get` always
        carries the address)."""
        what = f"get {instance_id}"
        result = await self._run(["get", instance_id], what)
        if not result.ok:
            if is_not_found(self._message(result), instance_id):
                return None
            raise self._error(what, result)
        return parse_get(parse_json_output(result.stdout, what), instance_id)

    async def list_instances(self) -> list[Instance] | None:
        """None: no list call serves observation here.

        `cloudypad list` (0.45.1) prints instance names only, read from the local state
        folder: it could tell which instances exist, but every state, IP and `configured`
        flag still needs one `get <name>` per instance, and `get` of a missing name already
        answers "not found" from the same local state. So observation stays one `get` per
        VM, and the budget layer bounds how many CLI runs go at once.
        """
        return None

    async def create(self, spec: CreateSpec) -> Instance:
        """Return the named instance if it exists; else run `create` and `get` it.

        Success is what `get` says afterwards, never the exit code alone (a failed create
        was seen to exit 0). When `create` dies ambiguously (crash, timeout, unknown
        failure) the instance may exist anyway: look it up before reporting the error, so
        a retry adopts it.
        """
        existing = await self.find(spec.name)
        if existing is not None:
            return existing
        # Inputs-only state is a leftover of a failed create (e.g. no capacity): create
        # again over it (--overwrite-existing), possibly in another zone.
        if spec.preset not in self._cloud.machines:
            raise ProviderError(
                ErrorReason.UNSUPPORTED,
                f"{self._provider}: preset {spec.preset} is not offered (Wolf needs NVIDIA)",
                retryable=False,
            )
        environment = await self._prepare()
        key_path = None
        if self._cloud.ssh_key_flag:
            key_path = await asyncio.to_thread(environment.ssh_key_for, spec.name)
        args = create_args(
            self._cloud, spec.name, spec.preset, spec.offer, self._flag_values, key_path
        )
        what = f"create {spec.name}"
        try:
            result = await self._run(args, what)
        except ProviderError as exc:
            found = await self.observe(spec.name) if exc.retryable else None
            if found is not None and is_provisioned(found):
                return found
            raise
        found = await self.observe(spec.name)
        if found is not None and is_provisioned(found):
            if not result.ok:
                log.info(
                    "CloudyPad %s failed after creating the instance: %s",
                    what,
                    self._error(what, result),
                )
            return found
        error = (
            self._error(what, result)
            if not result.ok
            else ProviderError(
                ErrorReason.CLI_FAILED,
                f"CloudyPad {what}: exit 0 but `get {spec.name}` shows no provisioned "
                f"instance: {self._message(result) or '(no output)'}",
                retryable=True,
            )
        )
        if found is not None:
            # Inputs-only (or half-provisioned) state: destroy it so it neither lingers in
            # `cloudypad list` nor leaks what Pulumi did create, nor blocks a fallback.
            await self._forget(spec.name)
        raise error

    async def _forget(self, name: str) -> None:
        """Best effort: destroy the inputs-only state a failed create left behind."""
        try:
            await self.delete(name)
        except ProviderError as exc:
            log.warning("CloudyPad: could not clean up failed instance %s: %s", name, exc)

    async def start(self, instance_id: str) -> None:
        """`start <name> --wait --timeout S`; already running is success."""
        await self._power("start", instance_id)

    async def stop(self, instance_id: str) -> None:
        """`stop <name> --wait --timeout S`; already stopped is success.

        Instances are created with the server kept on stop; an instance whose server a
        stop deleted anyway reads as stopped, and `start` re-creates it.
        """
        await self._power("stop", instance_id)

    async def _power(self, action: str, name: str) -> None:
        what = f"{action} {name}"
        args = power_args(action, name, self._power_timeout)
        # The CLI waits up to --timeout itself; give it a margin before killing it.
        result = await self._run(args, what, limit=self._power_timeout + 60)
        if result.ok or is_already(self._message(result)):
            return
        raise self._error(what, result)

    async def delete(self, instance_id: str) -> None:
        """`destroy <name> --yes`; an instance CloudyPad does not know is already gone."""
        what = f"destroy {instance_id}"
        result = await self._run(destroy_args(instance_id), what)
        if not result.ok and not is_not_found(self._message(result), instance_id):
            raise self._error(what, result)
        if self._cloud.ssh_key_flag:
            await asyncio.to_thread(self._environment.forget_ssh_key, instance_id)


async def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill a CLI run and reap it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # it may exit meanwhile
            process.kill()
    await process.wait()
