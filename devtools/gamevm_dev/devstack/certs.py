"""Certificates and keys of the local control plane, generated with `cryptography`.

One self-signed CA signs the API server's serving certificate (127.0.0.1 and
localhost) and the client certificates (admin and controller manager, both in
group system:masters: a dev cluster has no need for finer identities). A separate
RSA key pair signs service-account tokens, so TokenRequest works.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=365)
_MASTERS = "system:masters"


@dataclass(frozen=True)
class CertPaths:
    """Where each certificate and key lives under the state folder's certs/."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.root / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.root / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"

    def client_cert(self, user: str) -> Path:
        return self.root / f"{user}.crt"

    def client_key(self, user: str) -> Path:
        return self.root / f"{user}.key"


CLIENT_USERS = ("admin", "kube-controller-manager")
"""Client identities written by `ensure_certs` (CN = user, O = system:masters)."""


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _write_ca(paths: CertPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = _name("gamevm-dev-ca")
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_private(paths.ca_key, _key_pem(key))
    paths.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _load_ca(paths: CertPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{paths.ca_key}: expected an EC key")
    return cert, key


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _write_leaf(
    cert_path: Path,
    key_path: Path,
    subject: x509.Name,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    server: bool,
) -> None:
    ca_cert, ca_key = ca
    key = _new_key()
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        ).add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_sa_keys(paths: CertPaths) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(paths.sa_key, _key_pem(key))
    paths.sa_pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def ensure_certs(root: Path) -> CertPaths:
    """Create whatever of the CA, serving cert, client certs and SA keys is missing.

    Existing files are kept, so a second `dev up` reuses the same identities and
    kubeconfigs handed out earlier stay valid.
    """
    paths = CertPaths(root)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    if paths.ca_cert.exists() and paths.ca_key.exists():
        ca = _load_ca(paths)
    else:
        ca = _write_ca(paths)
        # A new CA invalidates every leaf signed by an old one.
        for leaf in root.glob("*.crt"):
            if leaf != paths.ca_cert:
                leaf.unlink()
    if not paths.serving_cert.exists():
        _write_leaf(paths.serving_cert, paths.serving_key, _name("kube-apiserver"), ca, server=True)
    for user in CLIENT_USERS:
        if not paths.client_cert(user).exists():
            _write_leaf(
                paths.client_cert(user),
                paths.client_key(user),
                _name(user, _MASTERS),
                ca,
                server=False,
            )
    if not (paths.sa_key.exists() and paths.sa_pub.exists()):
        _write_sa_keys(paths)
    return paths
