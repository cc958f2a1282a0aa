"""CloudyPad CLI arguments, `get` parsing, error mapping and the bundled table (pure)."""

import asyncio
import uuid
from pathlib import Path

import pytest
import yaml

from gamevm.models import PRESET_RESOURCES, CloudProvider, GpuTier, VMPreset
from gamevm.providers.base import ErrorReason, InstanceState, OfferRequest, ProviderError
from gamevm.providers.cloudypad.adapter import CloudyPadProvider
from gamevm.providers.cloudypad.catalog import CLOUD_OF_PROVIDER, cloudypad_catalog
from gamevm.providers.cloudypad.cli import (
    cli_error,
    create_args,
    is_already,
    is_not_found,
    parse_get,
    parse_json_output,
    power_args,
    redact,
    summary,
)
from gamevm.providers.cloudypad.environment import CliEnvironment
from gamevm.services.reconcile import instance_name
from gamevm_dev.simulators.cloudypad.kebab import is_kebab_case


def adapter(provider: CloudProvider) -> CloudyPadProvider:
    return CloudyPadProvider(provider, cli="cloudypad", credentials={}, timeout=1, power_timeout=1)


async def offers(provider: CloudProvider, preset: VMPreset) -> list:  # type: ignore[type-arg]
    return await adapter(provider).offers(
        OfferRequest(preset=preset, resources=PRESET_RESOURCES[preset])
    )


def test_every_cloud_has_regions_and_gpu_presets_only() -> None:
    catalog = cloudypad_catalog()
    assert set(catalog) == set(CLOUD_OF_PROVIDER.values())
    for cloud in catalog.values():
        assert cloud.regions
        assert set(cloud.machines) == {VMPreset.ADVANCED, VMPreset.PREMIUM}
        for region in cloud.regions:
            assert -90 <= region.latitude <= 90
            assert -180 <= region.longitude <= 180


async def test_gcp_offers_from_table() -> None:
    by_region = {o.region: o for o in await offers(CloudProvider.CLOUDYPAD_GCP, VMPreset.ADVANCED)}
    tokyo = by_region["asia-northeast1"]
    assert tokyo.placement_id == "asia-northeast1-a"
    assert tokyo.price_per_hour == 0.57
    assert tokyo.details["machine_type"] == "n1-standard-4"
    assert tokyo.details["gpu_type"] == "nvidia-tesla-t4"
    assert tokyo.gpu_tier is GpuTier.BASIC
    assert (tokyo.latitude, tokyo.longitude) == (35.68, 139.65)
    premium = await offers(CloudProvider.CLOUDYPAD_GCP, VMPreset.PREMIUM)
    assert {o.details["machine_type"] for o in premium} == {"n1-standard-8"}


@pytest.mark.parametrize("provider", list(CLOUD_OF_PROVIDER))
async def test_gpu_less_presets_not_offered(provider: CloudProvider) -> None:
    assert await offers(provider, VMPreset.RETRO) == []


async def test_gcp_create_args() -> None:
    (offer,) = [
        o
        for o in await offers(CloudProvider.CLOUDYPAD_GCP, VMPreset.PREMIUM)
        if o.region == "asia-northeast1"
    ]
    args = create_args(
        cloudypad_catalog()["gcp"],
        "gvm-1",
        VMPreset.PREMIUM,
        offer,
        {"GOOGLE_PROJECT": "proj-1", "GOOGLE_CREDENTIALS": "{secret}"},
    )
    assert args[:13] == [
        "create",
        "gcp",
        "--name",
        "gvm-1",
        "--yes",
        "--overwrite-existing",
        "--skip-pairing",
        "--streaming-server",
        "wolf",
        "--autostop",
        "false",
        "--retries",
        "0",
    ]
    joined = " ".join(args)
    assert "--project-id proj-1" in joined
    assert "--region asia-northeast1 --zone asia-northeast1-a" in joined
    assert "--machine-type n1-standard-8 --gpu-type nvidia-tesla-t4" in joined
    assert "{secret}" not in joined  # credentials go to the environment only
    # Every option CloudyPad would otherwise ask for (a prompt dies without a TTY) ...
    for option in ("--spot no", "--disk-size 100", "--disk-type pd-balanced",
                   "--network-tier PREMIUM", "--nic-type auto", "--cost-alert no"):  # fmt: skip
        assert option in joined
    # ... and stop only powers off: the server and its disk stay.
    assert "--delete-instance-server-on-stop no --data-disk-snapshot no" in joined
    assert "--base-image-snapshot no" in joined


async def test_paperspace_and_azure_args() -> None:
    ps = (await offers(CloudProvider.CLOUDYPAD_PAPERSPACE, VMPreset.ADVANCED))[0]
    args = create_args(cloudypad_catalog()["paperspace"], "n", VMPreset.ADVANCED, ps, {}, "/k")
    assert args[args.index("--region") + 1] == "East Coast (NY2)"
    assert args[args.index("--ssh-key-path") + 1] == "/k"
    assert "--zone" not in args
    assert "--delete-instance-server-on-stop" not in args  # Paperspace has no such option
    az = (await offers(CloudProvider.CLOUDYPAD_AZURE, VMPreset.PREMIUM))[0]
    args = create_args(
        cloudypad_catalog()["azure"], "n", VMPreset.PREMIUM, az, {"AZURE_SUBSCRIPTION_ID": "s"}
    )
    assert args[args.index("--location") + 1] == az.region
    assert args[args.index("--vm-size") + 1] == "Standard_NC8as_T4_v3"
    assert args[args.index("--subscription-id") + 1] == "s"


async def test_azure_machines_are_ones_cloudypad_supports() -> None:
    # Standard_NV6ads_A10_v5 is commented out upstream (needs GRID drivers).
    machines = {m.machine_type for m in cloudypad_catalog()["azure"].machines.values()}
    assert "Standard_NV6ads_A10_v5" not in machines
    assert machines <= {"Standard_NC4as_T4_v3", "Standard_NC8as_T4_v3", "Standard_NC16as_T4_v3"}


async def test_scaleway_prices_are_euros_converted_to_dollars() -> None:
    machine = cloudypad_catalog()["scaleway"].machines[VMPreset.ADVANCED]
    assert machine.currency == "EUR"
    provider = CloudyPadProvider(
        CloudProvider.CLOUDYPAD_SCALEWAY,
        cli="cloudypad",
        credentials={},
        timeout=1,
        power_timeout=1,
        eur_usd_rate=1.25,
    )
    request = OfferRequest(preset=VMPreset.ADVANCED, resources=PRESET_RESOURCES[VMPreset.ADVANCED])
    (offer, *_) = await provider.offers(request)
    assert offer.price_per_hour == round(machine.price_per_hour * 1.25, 4)
    assert offer.details["list_price"] == f"{machine.price_per_hour} EUR/h"
    without_rate = adapter(CloudProvider.CLOUDYPAD_SCALEWAY)
    with pytest.raises(ProviderError) as raised:
        await without_rate.offers(request)
    assert "EUR" in raised.value.message


def test_power_args() -> None:
    assert power_args("start", "gvm-1", 600) == [
        "start", "gvm-1", "--wait", "--timeout", "600", "--retries", "0",
    ]  # fmt: skip


GET_OUTPUT = """
{
  "version": "1",
  "name": "gvm-1",
  "provision": {
    "provider": "gcp",
    "input": {"region": "asia-northeast1", "zone": "asia-northeast1-a",
              "machineType": "n1-standard-8"},
    "output": {"host": "34.85.1.2", "instanceName": "cloudypad-gvm-1",
               "portForwards": {"47989": 41234}}
  },
  "configuration": {"configurator": "ansible", "output": {}},
  "status": {"serverStatus": "running", "provisioned": true, "configured": true,
             "ready": true}
}
"""


def test_parse_get() -> None:
    instance = parse_get(parse_json_output(GET_OUTPUT, "get"), "gvm-1")
    assert instance.instance_id == "gvm-1"
    assert instance.state is InstanceState.RUNNING
    assert instance.ip_address == "34.85.1.2"
    assert instance.wolf_http_port == 41234
    assert instance.configured
    assert instance.region == "asia-northeast1-a"
    assert instance.metadata["ready"] == "true"
    assert instance.metadata["machine_type"] == "n1-standard-8"


def test_parse_get_without_port_forwards_is_identity() -> None:
    document = {
        "name": "x",
        "provision": {"provider": "aws", "input": {}, "output": {"host": "1.2.3.4"}},
        "status": {"serverStatus": "stopped", "provisioned": True, "configured": True},
    }
    instance = parse_get(document, "x")
    assert instance.state is InstanceState.STOPPED
    assert instance.wolf_http_port == 47989


def test_parse_get_unprovisioned_is_pending() -> None:
    document = {"name": "x", "provision": {"provider": "aws", "input": {}}, "status": {}}
    instance = parse_get(document, "x")
    assert instance.state is InstanceState.PENDING
    assert instance.ip_address is None
    assert instance.metadata["provisioned"] == "false"


def test_json_output_with_log_lines_and_garbage() -> None:
    assert parse_json_output('Loading...\n{"a": 1}\nbye', "get") == {"a": 1}
    with pytest.raises(ProviderError) as raised:
        parse_json_output('Warning: {"provision": {"pro', "get x")
    assert raised.value.reason is ErrorReason.BAD_RESPONSE


REAL_NOT_FOUND = (
    "\x1b[37m2026-11-30 16:35:42.721\x1b[39m\t\x1b[31m\x1b[1mERROR\x1b[22m\x1b[39m\tprogram\t\n"
    "\x1b[97m\x1b[101m\x1b[1m Error \x1b[22m\x1b[49m\x1b[39m Failed to get details of instance "
    "gvm-x\nerror stack:\n  \u2022 program.js\tCommand.<anonymous>\n"
    "Caused by (1): Error: Instance named 'gvm-x' does not exist.\n"
)
"""The shape of the real CLI's `get` of a missing instance (stdout)."""
OOPS = "\nOops, something went wrong \U0001f628 Full error is shown above.\n"


def test_errors_are_read_from_stdout_without_ansi() -> None:
    message = summary(REAL_NOT_FOUND, OOPS)
    assert message == (
        "Failed to get details of instance gvm-x | Error: Instance named 'gvm-x' does not exist."
    )
    assert is_not_found(message, "gvm-x")
    assert not is_not_found(message, "gvm-y")
    assert not is_not_found("spawn pulumi ENOENT", "gvm-x")  # a missing tool is no answer


@pytest.mark.parametrize(
    ("message", "reason", "retryable"),
    [
        ("Error: ZONE_RESOURCE_POOL_EXHAUSTED: The zone ...", ErrorReason.NO_CAPACITY, False),
        ("InsufficientInstanceCapacity: We currently do not have", ErrorReason.NO_CAPACITY, False),
        ("AllocationFailed: Allocation failed.", ErrorReason.NO_CAPACITY, False),
        ("scaleway-sdk-go: out of stock: instance type", ErrorReason.NO_CAPACITY, False),
        ("Could not load the default credentials.", ErrorReason.UNAUTHORIZED, False),
        (
            "Failed to prompt input | Error: Scaleway configuration is not valid. Did you "
            "configure your Scaleway credentials?",
            ErrorReason.UNAUTHORIZED,
            False,
        ),
        (
            "? Instance name must be kebab case. Use gvm-3-f instead? (Y/n) | Instance "
            "initialization failed | Failed to prompt input | ExitPromptError: User force "
            "closed the prompt with 0 null",
            ErrorReason.INVALID_REQUEST,
            False,
        ),
        ("error: unknown option '--bogus'", ErrorReason.INVALID_REQUEST, False),
        (
            "Command failed with ENOENT: pulumi version spawn pulumi ENOENT",
            ErrorReason.CLI_FAILED,
            False,
        ),
        (
            "Failed to list machines | Error: getaddrinfo ENOTFOUND api.paperspace.com",
            ErrorReason.CONNECTION_ERROR,
            True,
        ),
        ("Instance named 'gvm-1' does not exist.", ErrorReason.NOT_FOUND, False),
        ("Pulumi operation failed", ErrorReason.CLI_FAILED, True),
    ],
)
def test_cli_error_mapping(message: str, reason: ErrorReason, retryable: bool) -> None:
    error = cli_error("create gvm-1", 1, message)
    assert error.reason is reason
    assert error.retryable is retryable
    assert message in error.message


def test_already_helper() -> None:
    assert is_already("Instance gvm-1 is already running")
    assert is_already("already running")
    assert is_already("Instance already destroyed")


def test_redact_credentials_and_private_keys() -> None:
    assert redact("token abcd1234 leaked", ["abcd1234", "ab"]) == "token *** leaked"
    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----"
    assert redact(f"x {pem} y", []) == "x *** y"
    leaked = '"privateKeyContentBase64": "LS0tLS1CRUdJTiBPUEVOU1NIIFBSSVZBVEUgS0VZ"'
    assert "LS0tLS1" not in redact(leaked, [])


def test_parse_get_server_deleted_by_stop_is_stopped() -> None:
    # CloudyPad's default stop on GCP/AWS/Azure/Scaleway deletes the server: `get` then
    # says unknown. The instance is stopped (start re-creates it), never lost.
    document = {
        "name": "x",
        "provision": {"provider": "gcp", "input": {}, "output": {"host": "1.2.3.4"}},
        "status": {"serverStatus": "unknown", "provisioned": True, "configured": False},
    }
    assert parse_get(document, "x").state is InstanceState.STOPPED


def test_json_errors_never_quote_the_output() -> None:
    with pytest.raises(ProviderError) as raised:
        parse_json_output('{"ssh": {"privateKeyContentBase64": "LS0tLS1CRUdJTi', "get x")
    assert "LS0tLS1" not in raised.value.message


def test_adapter_rejects_non_cloudypad_provider() -> None:
    with pytest.raises(ValueError, match="not a CloudyPad provider"):
        adapter(CloudProvider.TENSORDOCK)


def test_instance_names_pass_cloudypads_kebab_case_check() -> None:
    uids = [str(uuid.uuid4()) for _ in range(200)] + ["0b9e7c1a-1111-2222-3333-444455556666"]
    names = {instance_name(uid) for uid in uids}
    assert len(names) == len(uids)  # still one name per uid
    for name in names:
        assert is_kebab_case(name), name  # lodash would not change it: no prompt
    assert not is_kebab_case("gvm-3f2a9c1e")  # what uid-derived hex names used to be


def test_cli_environment_writes_what_the_sdks_read(tmp_path: Path) -> None:
    environment = CliEnvironment(
        cloud="all",
        credentials={
            "GOOGLE_CREDENTIALS": '{"type": "service_account"}',
            "AZURE_CLIENT_ID": "client",
            "AZURE_CLIENT_SECRET": "azure-secret",
            "AZURE_TENANT_ID": "tenant",
            "SCW_ACCESS_KEY": "SCWXXXXXXXXXXXXXXXXX",
            "SCW_SECRET_KEY": "scw-secret",
            "SCW_DEFAULT_PROJECT_ID": "project",
        },
        home=str(tmp_path / "cloudypad"),
        extra_env={"HOME": str(tmp_path / "user")},
    )
    environment.prepare()
    try:
        env, private = environment.env, environment.private_dir
        assert private is not None
        assert private.stat().st_mode & 0o777 == 0o700
        gcp = Path(env["GOOGLE_APPLICATION_CREDENTIALS"])
        assert gcp.parent == private
        assert gcp.read_text() == '{"type": "service_account"}'
        assert gcp.stat().st_mode & 0o777 == 0o600
        assert "GOOGLE_CREDENTIALS" not in env  # the SDKs never read it; a file they do
        assert env["ARM_CLIENT_SECRET"] == env["AZURE_CLIENT_SECRET"] == "azure-secret"
        assert env["ARM_TENANT_ID"] == "tenant"
        scw = Path(env["HOME"]) / ".config" / "scw" / "config.yaml"
        assert yaml.safe_load(scw.read_text()) == {
            "access_key": "SCWXXXXXXXXXXXXXXXXX",
            "secret_key": "scw-secret",
            "default_project_id": "project",
        }
        assert scw.stat().st_mode & 0o777 == 0o600
        config = yaml.safe_load((tmp_path / "cloudypad" / "config.yml").read_text())
        assert config["version"] == "1"
        assert config["analytics"]["promptedPersonalDataCollectionApproval"] is True
        assert config["analytics"]["posthog"]["collectionMethod"] == "none"
    finally:
        environment.remove()
    assert not private.exists()


async def test_each_cli_run_has_a_data_root_of_its_own(tmp_path: Path) -> None:
    """CloudyPad rewrites config.yml in place at every start, so runs at once get their own
    root: a copy of config.yml, a link to the shared instances, removed afterwards."""
    seen = tmp_path / "seen"
    seen.mkdir()
    cli = tmp_path / "fake-cloudypad"
    # Records what one run sees, then lingers so the runs overlap.
    cli.write_text(
        "#!/bin/sh\n"
        'out="$(mktemp -p ' + str(seen) + ')"\n'
        'echo "$CLOUDYPAD_HOME" > "$out"\n'
        'readlink -f "$CLOUDYPAD_HOME/instances" >> "$out"\n'
        'grep -c collectionMethod "$CLOUDYPAD_HOME/config.yml" >> "$out"\n'
        'echo "$PULUMI_BACKEND_URL" >> "$out"\n'
        "sleep 0.3\n"
        "echo '[]'\n"
    )
    cli.chmod(0o755)
    home = tmp_path / "cloudypad"
    provider = CloudyPadProvider(
        CloudProvider.CLOUDYPAD_GCP,
        cli=str(cli),
        credentials={},
        timeout=10,
        power_timeout=10,
        home=str(home),
        extra_env={"HOME": str(tmp_path / "home")},
    )
    try:
        await asyncio.gather(*(provider._run(["list"], "list") for _ in range(3)))
    finally:
        await provider.aclose()
    records = [p.read_text().splitlines() for p in seen.iterdir()]
    assert len(records) == 3
    assert len({r[0] for r in records}) == 3  # three roots
    assert all(Path(r[0]) != home for r in records)
    assert {r[1] for r in records} == {str((home / "instances").resolve())}
    assert {r[2] for r in records} == {"1"}  # the consent answer, copied
    assert {r[3] for r in records} == {f"file://{home / 'pulumi-backend'}"}
    assert not any(Path(r[0]).exists() for r in records)  # removed after the run
    assert sorted(p.name for p in home.iterdir()) == ["config.yml", "instances"]
