"""`gamevm-dev up --tensordock-url URL` against an endpoint the stack did not start.

The test starts a TensorDock simulator itself, as its own process on a random port with
its own token, and hands only the URL and token to `gamevm-dev up`. The stack starts no
simulator of its own; the operator provisions the sample TensorDock GameVMs at that
endpoint, and they reach `running` through the operator's user data and report.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gamevm_dev.devstack.binaries import KUBECTL, find_existing
from tests.fixtures.simulators import TensorDockSimHandle, run_tensordock_sim

pytestmark = pytest.mark.e2e

GAMEVM_DEV = [sys.executable, "-m", "gamevm_dev.devstack.cli"]


@pytest.fixture
def dev_state(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "dev"
    yield state
    subprocess.run([*GAMEVM_DEV, "down", "--state-dir", str(state)], check=False, timeout=120)


def _exports(stdout: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value.strip("'")
    return env


def _kubectl_json(state: Path, *args: str) -> Any:
    kubectl = find_existing(KUBECTL) or "kubectl"
    done = subprocess.run(
        [str(kubectl), *args, "-o", "json"],
        env={**os.environ, "KUBECONFIG": str(state / "kubeconfig")},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def test_dev_up_uses_an_endpoint_it_did_not_start(dev_state: Path) -> None:
    with run_tensordock_sim() as external:
        up = subprocess.run(
            [
                *GAMEVM_DEV,
                "up",
                "--state-dir",
                str(dev_state),
                "--tensordock-url",
                external.base_url,
            ],
            env={
                **os.environ,
                # The token through the environment, as for the e2e fixtures.
                "GAMEVM_DEV_TENSORDOCK_TOKEN": external.token,
                # `up` waits for every sample, the CloudyPad ones too: without this the
                # simulated CloudyPad create keeps its realistic 3 minutes (the operator
                # passes CLOUDYPAD_* on to its CLI runs). This test is about TensorDock.
                "CLOUDYPAD_SIM_DELAY_SCALE": "0",
            },
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert up.returncode == 0, up.stderr[-3000:]
        assert f"external endpoint {external.base_url} (no simulator started)" in up.stderr
        assert _exports(up.stdout)["GAMEVM_TENSORDOCK_API_URL"] == external.base_url
        assert external.token not in up.stdout, "the token is not printed"
        assert not (dev_state / "pids" / "tensordock-simulator.pid").exists()
        listing = asyncio.run(_instances(external))
    live = [i for i in listing["instances"] if not i["deleted"]]
    assert live, "the operator created the sample TensorDock VMs at the external endpoint"
    for instance in live:
        assert instance["wolf_installed"], instance
        assert instance["report"] == "sent 200", instance
    gamevms = _kubectl_json(dev_state, "get", "gamevms", "-A")["items"]
    on_tensordock = [g for g in gamevms if g.get("status", {}).get("provider") == "tensordock"]
    assert on_tensordock
    ids = {i["id"] for i in live}
    for gamevm in on_tensordock:
        assert gamevm["status"]["phase"] == "running", gamevm["status"]
        assert gamevm["status"]["providerInstanceId"] in ids


async def _instances(sim: TensorDockSimHandle) -> Any:
    return await sim.instances()
