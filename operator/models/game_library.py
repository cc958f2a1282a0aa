"""An EmulatorConfig's optional game library: a read-only source mounted on each VM."""

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationInfo, field_validator
from pydantic.config import JsonDict

from gamevm.models.base import SpecModel

S3_URL_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$"
HTTP_URL_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s]*)?$"
MOUNT_PATH_PATTERN = r"^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$"
DNS_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
DEFAULT_MOUNT_PATH = "/srv/games"

SecretName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_NAME_PATTERN)
]


class GameLibrarySource(StrEnum):
    """Where the library lives."""

    S3 = "s3"
    HTTP = "http"


class SecretReference(SpecModel):
    """A Secret in the operator's namespace (see docs/wolf-host.md for its keys)."""

    name: SecretName = Field(description="Secret name, in the operator's namespace.")


_URL_MATCHES_SOURCE: JsonDict = {
    "rule": "self.source == 's3' ? self.url.startsWith('s3://') : "
    "(self.url.startsWith('http://') || self.url.startsWith('https://'))",
    "message": "url must be s3://bucket/prefix for source s3 and http(s):// for source http",
}


class GameLibrary(SpecModel):
    """A read-only game library mounted on every VM of the console during configuration."""

    model_config = {"json_schema_extra": {"x-kubernetes-validations": [_URL_MATCHES_SOURCE]}}

    source: GameLibrarySource = Field(description="s3 (S3 or compatible) or http (HTTP index).")
    url: str = Field(
        max_length=2048,
        pattern=f"^({S3_URL_PATTERN[1:-1]}|{HTTP_URL_PATTERN[1:-1]})$",
        description="s3://bucket/prefix or http(s)://host/path of the library.",
    )
    endpoint: str | None = Field(
        default=None,
        max_length=2048,
        pattern=HTTP_URL_PATTERN,
        description="S3-compatible endpoint URL (MinIO, R2, ...); unset: AWS S3.",
    )
    region: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[a-z0-9-]+$",
        description="S3 region (source s3).",
    )
    credentials_secret_ref: SecretReference | None = Field(
        default=None,
        description=(
            "Secret with read-only credentials (s3: access-key-id, secret-access-key; http: "
            "username, password). They reach the VM in its user data; see docs/wolf-host.md."
        ),
    )
    mount_path: str = Field(
        default=DEFAULT_MOUNT_PATH,
        max_length=256,
        pattern=MOUNT_PATH_PATTERN,
        description="Where the library is mounted (read-only) on the VM.",
    )

    # A field validator (not a model validator): the error's `loc` then names `url`.
    @field_validator("url")
    @classmethod
    def _url_matches_source(cls, value: str, info: ValidationInfo) -> str:
        source = info.data.get("source")
        if source is not None and (source is GameLibrarySource.S3) != value.startswith("s3://"):
            raise ValueError(str(_URL_MATCHES_SOURCE["message"]))
        return value
