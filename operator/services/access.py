"""Per-VM access material (SSH key pair, heartbeat token), derived, never stored by us.

The material is derived with HKDF from the operator's master key and the GameVM uid. That
lets the operator re-create the exact same Secret after a crash and check heartbeat tokens
without any permission to read Secrets: its RBAC has `create` on secrets and nothing else.
"""

import base64
import hmac
from dataclasses import dataclass
from hashlib import sha256

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SALT = b"gamevm.dev/access/v1"
MIN_MASTER_KEY_BYTES = 32


@dataclass(frozen=True)
class AccessMaterial:
    """What goes into the `<name>-access` Secret. `repr` hides the secret parts."""

    ssh_private_key: str
    ssh_public_key: str
    heartbeat_token: str

    def __repr__(self) -> str:
        return f"AccessMaterial(ssh_public_key={self.ssh_public_key!r}, <secrets hidden>)"


def derive_access(master_key: bytes, uid: str) -> AccessMaterial:
    """The VM's access material: the same inputs always give the same material."""
    if len(master_key) < MIN_MASTER_KEY_BYTES:
        raise ValueError(f"the access master key needs at least {MIN_MASTER_KEY_BYTES} bytes")
    okm = HKDF(algorithm=SHA256(), length=64, salt=_SALT, info=uid.encode()).derive(master_key)
    key = Ed25519PrivateKey.from_private_bytes(okm[:32])
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    token = base64.urlsafe_b64encode(okm[32:]).decode().rstrip("=")
    return AccessMaterial(private_pem, f"{public.decode()} gamevm-{uid[:8]}", token)


def verify_heartbeat_token(master_key: bytes, uid: str, presented: str) -> bool:
    """Constant-time check of a presented heartbeat token for one VM."""
    expected = derive_access(master_key, uid).heartbeat_token
    return hmac.compare_digest(
        sha256(expected.encode()).digest(), sha256(presented.encode()).digest()
    )
