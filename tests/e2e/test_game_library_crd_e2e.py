"""EmulatorConfig.gameLibrary: the API server itself rejects bad input, naming the field."""

import copy
from typing import Any

import pytest
import yaml

from tests.fixtures.operator_env import premium_config
from tests.fixtures.stack import Kubectl

pytestmark = pytest.mark.e2e

GOOD = {
    "source": "s3",
    "url": "s3://retro-games/gba",
    "endpoint": "https://minio.example.com",
    "region": "eu-west-1",
    "credentialsSecretRef": {"name": "game-library"},
}


def _config(library: dict[str, Any]) -> str:
    config = copy.deepcopy(premium_config("gba"))
    config["spec"]["gameLibrary"] = library
    return yaml.safe_dump(config)


@pytest.mark.parametrize(
    ("library", "expected"),
    [
        ({**GOOD, "source": "ftp"}, "spec.gameLibrary.source"),
        ({**GOOD, "url": "s3://Bad_Bucket/x"}, "spec.gameLibrary.url"),
        ({**GOOD, "url": "https://games.example.com/gba"}, "url must be s3://bucket/prefix"),
        ({**GOOD, "mountPath": "games"}, "spec.gameLibrary.mountPath"),
        ({**GOOD, "credentialsSecretRef": {"name": "Not_A_Name"}}, "credentialsSecretRef.name"),
        ({"url": "s3://retro-games/gba"}, "spec.gameLibrary.source"),
    ],
)
def test_bad_game_library_is_refused(
    kubectl: Kubectl, library: dict[str, Any], expected: str
) -> None:
    result = kubectl("apply", "--dry-run=server", "-f", "-", input=_config(library), check=False)
    assert result.returncode != 0, result.stdout
    assert expected in result.stderr, result.stderr


def test_good_game_library_is_accepted_with_the_default_mount(kubectl: Kubectl) -> None:
    result = kubectl(
        "apply", "--dry-run=server", "-o", "yaml", "-f", "-", input=_config(GOOD), check=False
    )
    assert result.returncode == 0, result.stderr
    stored = yaml.safe_load(result.stdout)
    assert stored["spec"]["gameLibrary"]["mountPath"] == "/srv/games"
