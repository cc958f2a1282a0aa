"""Fixed API names: group, kinds, annotations, labels, finalizer."""

from typing import Final

GROUP: Final = "gamevm.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

GAMEVM_KIND: Final = "GameVM"
GAMEVM_PLURAL: Final = "gamevms"
EMULATORCONFIG_KIND: Final = "EmulatorConfig"
EMULATORCONFIG_PLURAL: Final = "emulatorconfigs"

FINALIZER: Final = f"{GROUP}/finalizer"
ANNOTATION_PAUSED: Final = f"{GROUP}/paused"
ANNOTATION_POWER_REQUEST: Final = f"{GROUP}/power-request"
ANNOTATION_LAST_ACTIVITY: Final = f"{GROUP}/last-activity"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_GAMEVM: Final = f"{GROUP}/gamevm"
OPERATOR_NAME: Final = "gamevm-operator"

WOLF_PORT: Final = 47999
"""The seed's `wolf_port`: Wolf's UDP control port."""
WOLF_HTTP_PORT: Final = 47989
"""Wolf's Moonlight HTTP port: `/serverinfo` and pairing; the TCP health probe."""
SSH_PORT: Final = 22

ACCESS_SECRET_SUFFIX: Final = "-access"
ACCESS_SECRET_SSH_PRIVATE_KEY: Final = "ssh-privatekey"
ACCESS_SECRET_SSH_PUBLIC_KEY: Final = "ssh-publickey"
ACCESS_SECRET_HEARTBEAT_TOKEN: Final = "heartbeat-token"


def access_secret_name(gamevm_name: str) -> str:
    """Name of the per-VM Secret holding the SSH key pair and heartbeat token."""
    return f"{gamevm_name}{ACCESS_SECRET_SUFFIX}"


WOLF_SERVER_IMAGE: Final = (
    "ghcr.io/games-on-whales/wolf:stable"
    "@sha256:5bf5041065dbfea67e60c3a28a42a551be970feed5d1be6d59bee2d134da1770"
)
"""Wolf's server image, pinned by digest (the digest CloudyPad 0.45.1 deploys)."""
