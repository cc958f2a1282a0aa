"""One contract, two CLIs: the `cloudypad-sim` simulator and the real CloudyPad CLI 0.45.1.

Every test runs against both (the `cloudypad_cli` fixture), without a TTY, so the
simulator cannot drift from the real CLI where both can run: where errors are printed,
what a question the CLI would ask does, the kebab-case name check, config.yml, and what
`get` says after a stop that deleted the server (CloudyPad's default on the clouds; shown
here with the offline `dummy` provider told to do the same).
"""

import re
from typing import Any

import pytest
import yaml

from gamevm.models.enums import CloudProvider, GpuTier, VMPreset
from gamevm.providers.base import Offer
from gamevm.providers.cloudypad.catalog import cloudypad_catalog
from gamevm.providers.cloudypad.cli import clean, create_args
from tests.fixtures.cloudypad_cli import CliHandle

DUMMY_CREATE = (
    "create", "dummy", "--yes", "--overwrite-existing", "--skip-pairing",
    "--streaming-server", "wolf", "--autostop", "false", "--instance-type", "dummy-type",
)  # fmt: skip
OOPS = "Oops, something went wrong"


@pytest.fixture
def cli(cloudypad_cli: CliHandle) -> CliHandle:
    """The CLI under test: `sim` or `real`."""
    return cloudypad_cli


def gcp_argv(name: str) -> list[str]:
    """The command line the adapter sends for GCP's first placement."""
    cloud = cloudypad_catalog()["gcp"]
    region = cloud.regions[0]
    offer = Offer(
        provider=CloudProvider.CLOUDYPAD_GCP, region=region.region,
        placement_id=str(region.zone), location_label=region.label, latitude=0.0,
        longitude=0.0, price_per_hour=1.0, vcpu=4, ram_gb=16, gpu_tier=GpuTier.BASIC,
        details={"cli_region": region.cli_value, "zone": str(region.zone)},
    )  # fmt: skip
    return create_args(cloud, name, VMPreset.ADVANCED, offer, {"GOOGLE_PROJECT": "proj"})


def write_config_without_analytics(cli: CliHandle) -> None:
    config = {
        "version": "1",
        "analytics": {
            "promptedPersonalDataCollectionApproval": True,
            "posthog": {"distinctId": "00000000-0000-4000-8000-000000000000"}
            | {"collectionMethod": "none"},
        },
    }
    (cli.home / "config.yml").write_text(yaml.safe_dump(config))


def get(cli: CliHandle, name: str) -> dict[str, Any]:
    code, out, err = cli.run("get", name)
    assert code == 0, clean(out + err)
    document: dict[str, Any] = yaml.safe_load(out)
    return document


async def test_config_yml_is_created_with_analytics_on_when_missing(cli: CliHandle) -> None:
    code, out, _err = await cli.arun("list")
    assert (code, out.strip()) == (0, "No instances found.")  # no question without a TTY
    config = yaml.safe_load((cli.home / "config.yml").read_text())
    assert config["analytics"]["promptedPersonalDataCollectionApproval"] is True
    assert config["analytics"]["posthog"]["collectionMethod"] == "technical"


async def test_missing_instance_is_an_error_on_stdout(cli: CliHandle) -> None:
    write_config_without_analytics(cli)
    for args in (("get", "gvm-nowhere"), ("destroy", "gvm-nowhere", "--yes")):
        code, out, err = await cli.arun(*args)
        assert code == 1
        assert "Instance named 'gvm-nowhere' does not exist." in clean(out)
        assert "\x1b[" in out  # tslog colours: readers must strip them
        assert OOPS in err
        assert "does not exist" not in err


async def test_a_name_that_is_not_kebab_case_asks_and_dies(cli: CliHandle) -> None:
    write_config_without_analytics(cli)
    code, out, err = await cli.arun(*DUMMY_CREATE, "--name", "gvm-3f2a")
    text = clean(out)
    assert code == 1
    assert "? Instance name must be kebab case. Use gvm-3-f-2-a instead?" in text
    assert "ExitPromptError" in text
    assert OOPS in err
    assert not cli.state_file("gvm-3f2a").exists()


async def test_a_missing_option_asks_and_dies(cli: CliHandle) -> None:
    write_config_without_analytics(cli)
    argv = gcp_argv("gvm-asks")
    at = argv.index("--nic-type")
    code, out, _err = await cli.arun(*argv[:at], *argv[at + 2 :])
    text = clean(out)
    assert code == 1
    assert re.search(r"^\? Select NIC type", text, re.MULTILINE), text
    assert "ExitPromptError" in text


async def test_unknown_option_is_a_usage_error_on_stderr(cli: CliHandle) -> None:
    write_config_without_analytics(cli)
    code, out, err = await cli.arun(*DUMMY_CREATE, "--name", "gvm-x", "--bogus")
    assert (code, out) == (1, "")
    assert err.strip() == "error: unknown option '--bogus'"


async def test_stop_that_deletes_the_server_then_start_resumes(cli: CliHandle) -> None:
    write_config_without_analytics(cli)
    code, out, err = await cli.arun(*DUMMY_CREATE, "--name", "gvm-stop")
    assert code == 0, clean(out + err)
    assert get(cli, "gvm-stop")["status"] == {
        "serverStatus": "running",
        "provisioned": True,
        "configured": True,
        "ready": True,
    }
    # What `stop` does by default on GCP, AWS, Azure and Scaleway: delete the server.
    state = cli.state("gvm-stop")
    state["provision"]["input"].update(
        deleteInstanceServerOnStop=True, startDelaySeconds=0, stopDelaySeconds=0
    )
    cli.state_file("gvm-stop").write_text(yaml.safe_dump(state, sort_keys=False))
    assert (await cli.arun("stop", "gvm-stop", "--wait"))[0] == 0
    stopped = get(cli, "gvm-stop")
    assert stopped["status"]["serverStatus"] == "unknown"
    assert stopped["status"]["provisioned"] is True
    assert stopped["status"]["configured"] is False
    assert stopped["provision"]["input"]["runtime"]["instanceServerState"] == "absent"
    assert (await cli.arun("start", "gvm-stop", "--wait"))[0] == 0
    assert get(cli, "gvm-stop")["status"]["serverStatus"] == "running"
    assert (await cli.arun("destroy", "gvm-stop", "--yes"))[0] == 0
    code, out, _ = await cli.arun("get", "gvm-stop")
    assert code == 1
    assert "Instance named 'gvm-stop' does not exist." in clean(out)
