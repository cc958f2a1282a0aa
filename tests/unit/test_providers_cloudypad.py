"""CloudyPad CLI arguments, `get` parsing, error mapping and the bundled table (pure)."""

import pytest

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
)


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
    assert args[:11] == [
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
    ]
    joined = " ".join(args)
    assert "--project-id proj-1" in joined
    assert "--region asia-northeast1 --zone asia-northeast1-a" in joined
    assert "--machine-type n1-standard-8 --gpu-type nvidia-tesla-t4" in joined
    assert "{secret}" not in joined  # credentials go to the environment only


async def test_paperspace_and_azure_args() -> None:
    ps = (await offers(CloudProvider.CLOUDYPAD_PAPERSPACE, VMPreset.ADVANCED))[0]
    args = create_args(cloudypad_catalog()["paperspace"], "n", VMPreset.ADVANCED, ps, {})
    assert args[args.index("--region") + 1] == "East Coast (NY2)"
    assert "--zone" not in args
    az = (await offers(CloudProvider.CLOUDYPAD_AZURE, VMPreset.PREMIUM))[0]
    args = create_args(
        cloudypad_catalog()["azure"], "n", VMPreset.PREMIUM, az, {"AZURE_SUBSCRIPTION_ID": "s"}
    )
    assert args[args.index("--location") + 1] == az.region
    assert args[args.index("--vm-size") + 1] == "Standard_NC8as_T4_v3"
    assert args[args.index("--subscription-id") + 1] == "s"


def test_power_args() -> None:
    assert power_args("start", "gvm-1", 600) == ["start", "gvm-1", "--wait", "--timeout", "600"]


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


@pytest.mark.parametrize(
    ("message", "reason", "retryable"),
    [
        ("Error: ZONE_RESOURCE_POOL_EXHAUSTED: The zone ...", ErrorReason.NO_CAPACITY, False),
        ("InsufficientInstanceCapacity: We currently do not have", ErrorReason.NO_CAPACITY, False),
        ("AllocationFailed: Allocation failed.", ErrorReason.NO_CAPACITY, False),
        ("scaleway-sdk-go: out of stock: instance type", ErrorReason.NO_CAPACITY, False),
        ("Google Cloud credentials not found: run", ErrorReason.UNAUTHORIZED, False),
        ("Paperspace API key not found: set", ErrorReason.UNAUTHORIZED, False),
        ("error: unrecognized arguments: --bogus", ErrorReason.INVALID_REQUEST, False),
        ("Missing required option(s) --zone", ErrorReason.INVALID_REQUEST, False),
        ("Instance gvm-1 not found", ErrorReason.NOT_FOUND, False),
        ("Pulumi operation failed", ErrorReason.CLI_FAILED, True),
    ],
)
def test_cli_error_mapping(message: str, reason: ErrorReason, retryable: bool) -> None:
    error = cli_error("create gvm-1", 1, message)
    assert error.reason is reason
    assert error.retryable is retryable
    assert message in error.message


def test_not_found_and_already_helpers() -> None:
    assert is_not_found("Error: Instance gvm-1 not found")
    assert not is_not_found("Google Cloud credentials not found")
    assert is_already("Instance gvm-1 is already running")
    assert is_already("already running")
    assert is_already("Instance already destroyed")


def test_redact() -> None:
    assert redact("token abcd1234 leaked", {"K": "abcd1234", "S": "ab"}) == "token *** leaked"


def test_adapter_rejects_non_cloudypad_provider() -> None:
    with pytest.raises(ValueError, match="not a CloudyPad provider"):
        adapter(CloudProvider.TENSORDOCK)
