"""Per-VM access material (SSH key pair, heartbeat token), derived, never stored by us.

The material is derived with HKDF from one of the operator's master keys and the GameVM
uid. That lets the operator check heartbeat tokens without any permission to read
Secrets: its RBAC has `create` on secrets and nothing else.

Master keys carry an id (a key ring): new VMs use the active key and record its id in
`status.accessKeyId`; a VM keeps its key for life, so after a rotation old keys keep
verifying heartbeats until the admin removes them (docs/operations.md, "Rotating the
access master key").
"""

import base64
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from hashlib import sha256

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SALT = b"gamevm.dev/access/v1"
MIN_MASTER_KEY_BYTES = 32
DEFAULT_KEY_ID = "default"
"""The id of the single `access-master-key` (and of VMs created before key ids existed)."""
KEY_ID_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")

# Keys (names, not values) of the operator's credentials Secret.
SECRET_KEY_SINGLE = "access-master-key"  # noqa: S105
SECRET_KEY_RING = "access-master-keys"  # noqa: S105
SECRET_KEY_ACTIVE = "access-master-key-id"  # noqa: S105


@dataclass(frozen=True)
class KeyRing:
    """Master keys by id, and the id new VMs use. `repr` hides the keys."""

    active_id: str
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.active_id not in self.keys:
            raise ValueError(f"the active key id {self.active_id!r} has no key")

    def key(self, key_id: str | None) -> bytes | None:
        """The key with this id (None: a VM from before key ids, so the default key)."""
        return self.keys.get(key_id or DEFAULT_KEY_ID)

    @property
    def active(self) -> bytes:
        """The key new VMs derive from."""
        return self.keys[self.active_id]


def keyring_from_secret(data: Mapping[str, str]) -> KeyRing | None:
    """The key ring in the credentials Secret; None when it has no key at all.

    `access-master-key` is the key with id `default`; `access-master-keys` is a JSON object
    id -> key; `access-master-key-id` names the active one (default: `default` if that key
    exists, else the only key). Raises ValueError naming the Secret key that is wrong.
    """
    keys = _ring_keys(data.get(SECRET_KEY_RING))
    single = data.get(SECRET_KEY_SINGLE)
    if single is not None:
        if DEFAULT_KEY_ID in keys and keys[DEFAULT_KEY_ID] != single.encode():
            raise ValueError(
                f"{SECRET_KEY_RING} has a {DEFAULT_KEY_ID!r} key that differs from "
                f"{SECRET_KEY_SINGLE}"
            )
        keys[DEFAULT_KEY_ID] = single.encode()
    if not keys:
        return None
    for key_id, key in keys.items():
        if not KEY_ID_PATTERN.match(key_id):
            raise ValueError(
                f"key id {key_id!r} in {SECRET_KEY_RING}: use 1-32 lowercase letters, "
                "digits and '-'"
            )
        if len(key) < MIN_MASTER_KEY_BYTES:
            raise ValueError(
                f"master key {key_id!r} is shorter than {MIN_MASTER_KEY_BYTES} bytes "
                "(a placeholder?)"
            )
    return KeyRing(_active_id(data.get(SECRET_KEY_ACTIVE), keys), keys)


def _ring_keys(raw: str | None) -> dict[str, bytes]:
    if raw is None or not raw.strip():
        return {}
    try:
        ring = json.loads(raw)
    except ValueError:
        ring = None
    if not isinstance(ring, dict) or not all(isinstance(v, str) for v in ring.values()):
        raise ValueError(f"{SECRET_KEY_RING} is not a JSON object of id -> key")
    return {str(k): v.encode() for k, v in ring.items()}


def _active_id(raw: str | None, keys: Mapping[str, bytes]) -> str:
    active = (raw or "").strip()
    if not active:
        if DEFAULT_KEY_ID in keys:
            return DEFAULT_KEY_ID
        if len(keys) == 1:
            return next(iter(keys))
        raise ValueError(f"{SECRET_KEY_ACTIVE} must name the active key of {sorted(keys)}")
    if active not in keys:
        raise ValueError(f"{SECRET_KEY_ACTIVE} {active!r} is not one of {sorted(keys)}")
    return active


@dataclass(frozen=True)
class AccessMaterial:
    """What goes into the `<name>-access` Secret. `repr` hides the secret parts."""

    ssh_private_key: str
    ssh_public_key: str
    heartbeat_token: str

    def __repr__(self) -> str:
        return f"AccessMaterial(ssh_public_key={self.ssh_public_key!r}, <secrets hidden>)"


def _okm(master_key: bytes, uid: str) -> bytes:
    if len(master_key) < MIN_MASTER_KEY_BYTES:
        raise ValueError(f"the access master key needs at least {MIN_MASTER_KEY_BYTES} bytes")
    return HKDF(algorithm=SHA256(), length=64, salt=_SALT, info=uid.encode()).derive(master_key)


def _token(okm: bytes) -> str:
    return base64.urlsafe_b64encode(okm[32:]).decode().rstrip("=")


def derive_access(master_key: bytes, uid: str) -> AccessMaterial:
    """The VM's access material: the same inputs always give the same material."""
    okm = _okm(master_key, uid)
    key = Ed25519PrivateKey.from_private_bytes(okm[:32])
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return AccessMaterial(private_pem, f"{public.decode()} gamevm-{uid[:8]}", _token(okm))


def derive_heartbeat_token(master_key: bytes, uid: str) -> str:
    """Only the heartbeat token (one HKDF, no key pair): cheap enough for every request."""
    return _token(_okm(master_key, uid))


def verify_heartbeat_token(master_key: bytes, uid: str, presented: str) -> bool:
    """Constant-time check of a presented heartbeat token for one VM."""
    expected = derive_heartbeat_token(master_key, uid)
    return hmac.compare_digest(
        sha256(expected.encode()).digest(), sha256(presented.encode()).digest()
    )
