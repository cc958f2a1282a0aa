"""The operator's one settings object (environment variables prefixed GAMEVM_)."""

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gamevm.models.names import WOLF_SERVER_IMAGE


class Settings(BaseSettings):
    """Every tunable of the operator; built once at start-up, never at import time."""

    model_config = SettingsConfigDict(env_prefix="GAMEVM_", extra="ignore")

    # Scope and identity.
    namespace: str = Field(
        default="gamevm-system",
        description="Namespace the operator runs in; provider credential Secrets live here.",
    )
    watch_namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty means cluster-wide."
    )
    log_format: str = Field(default="text", description="'text' or 'json'.")
    pod_name: str | None = Field(
        default=None,
        description=(
            "This replica's name (Downward API), reported on Events (default: hostname); "
            "the elected leader labels this pod gamevm.dev/leader=true."
        ),
    )
    kube_client_threads: int = Field(
        default=8, ge=1, description="Threads for the (synchronous) Kubernetes client."
    )

    memory_trim_interval: float = Field(
        default=60.0,
        ge=0,
        description=(
            "Seconds between glibc malloc_trim calls that give freed heap memory back to "
            "the system (the start-up burst's, above all); 0: never. No effect without glibc."
        ),
    )

    watch_list_chunk_size: int = Field(
        default=500,
        ge=0,
        description=(
            "Objects per page of kopf's initial LIST of each resource (0: one response "
            "with every object); pages keep the start-up memory peak down."
        ),
    )

    # HTTP: operations (health, metrics) and the API (heartbeat, read API) on separate ports.
    http_host: str = Field(
        default="0.0.0.0",  # noqa: S104
        description="Bind address of the operations server (/healthz, /metrics).",
    )
    http_port: int = Field(
        default=8080, ge=1, le=65535, description="Port of /healthz and /metrics."
    )
    api_host: str = Field(
        default="0.0.0.0",  # noqa: S104
        description="Bind address of the API server (heartbeat, read API /v1/vms).",
    )
    api_port: int = Field(
        default=8081,
        ge=1,
        le=65535,
        description="Port of the heartbeat and the read API (Kubernetes bearer tokens).",
    )
    api_auth_cache_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long TokenReview and SubjectAccessReview answers are reused.",
    )
    heartbeat_rate_per_second: float = Field(
        default=1.0, gt=0, description="Heartbeat requests per second allowed per source IP."
    )
    heartbeat_burst: int = Field(
        default=10, ge=1, description="Heartbeat requests a source IP may send at once."
    )
    api_trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "CIDRs of the proxies in front of the API port (e.g. the ingress) whose "
            "X-Forwarded-For is believed: a VM's configuration report then gives its address "
            "from that header. Empty: the address is the connection's peer."
        ),
    )

    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description=(
            "Base URL at which VMs reach the API port (configuration report, heartbeat), "
            "e.g. https://gamevm.example.com; unset: cloud-init VMs cannot report and stay "
            "configuring (docs/wolf-host.md)."
        ),
    )

    # Leader election (one active operator among replicas).
    leader_election: bool = Field(
        default=True,
        description="Elect one active operator on a Lease; off: this process always acts.",
    )
    leader_lease_name: str = Field(
        default="gamevm-operator", description="Name of the Lease (in `namespace`)."
    )
    leader_identity: str = Field(
        default="",
        description="This candidate's identity in the Lease; empty: hostname plus a random id.",
    )
    leader_lease_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How long a Lease not renewed stays with its holder (takeover time).",
    )
    leader_renew_deadline_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A leader that cannot renew for this long stops (less than the lease).",
    )
    leader_retry_seconds: float = Field(
        default=2.0, gt=0, description="Seconds between Lease renewals and acquisition tries."
    )

    # Reconcile cadence.
    observe_interval: float = Field(
        default=5.0, gt=0, description="Seconds between observations while provisioning."
    )
    activity_interval: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Shortest gap between two activity checks (Wolf probes) of a running VM: their "
            "cadence near its idle deadline."
        ),
    )
    activity_max_interval: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Longest gap between two activity checks of a running VM: far from its idle "
            "deadline (or with none) the next check comes after half the time left, at most "
            "this and at least GAMEVM_ACTIVITY_INTERVAL later. Also how late a Wolf that "
            "stopped answering (3 missed probes: configuring) or an instance stopped outside "
            "the operator may show in status (docs/operations.md, The Wolf probe)."
        ),
    )
    wolf_probe_timeout: float = Field(
        default=3.0, gt=0, description="Seconds to wait for Wolf's /serverinfo."
    )
    status_hold_seconds: float = Field(
        default=20.0,
        ge=0,
        description=(
            "Seconds a new instance's `configuring` status may wait, so that a VM which comes "
            "up at once reaches `running` in one status write (0: write at once). Safe to "
            "lose in a crash: a restart adopts the instance by its name."
        ),
    )
    report_wait_seconds: float = Field(
        default=12.0,
        ge=0,
        description=(
            "Seconds a VM's configuration report waits for the VM's next status write to "
            "store it (one write for both) before it is written on its own; below the "
            "report's 20 s client timeout."
        ),
    )
    wolf_probe_allow_loopback: bool = Field(
        default=False,
        description=(
            "Let the Wolf probe connect to loopback addresses. Only for the local stack and "
            "tests, where simulated VMs listen on 127.0.0.1; never in a cluster."
        ),
    )
    retry_delay: float = Field(
        default=10.0, gt=0, description="Base delay before retrying a retryable provider error."
    )

    # Providers.
    credentials_secret: str = Field(
        default="gamevm-provider-credentials",
        description="Secret (in `namespace`) with provider credentials (docs/operations.md).",
    )
    tensordock_api_url: str = Field(
        default="https://dashboard.tensordock.com/api/v2", description="TensorDock v2 base URL."
    )
    tensordock_requests_per_minute: int = Field(
        default=100, gt=0, description="Client-side rate limit (TensorDock documents 100/min)."
    )
    provider_list_interval: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds between the one instance-list call per provider that observes all its "
            "VMs (TensorDock: 6 of its 100 requests/min)."
        ),
    )
    provider_offers_interval: float = Field(
        default=30.0,
        gt=0,
        description="Seconds one offer listing per provider serves every VM being placed.",
    )
    provider_create_concurrency: int = Field(
        default=16,
        ge=1,
        description=(
            "Creates in flight per provider; the rest queue, round-robin across namespaces."
        ),
    )
    shard: str | None = Field(
        default=None,
        pattern=r"^\d+/[1-9]\d*$",
        description=(
            "'i/n': handle only GameVMs whose uid hashes to shard i of n (docs/scaling.md); "
            "unset: all."
        ),
    )

    @field_validator("api_trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"api_trusted_proxies: {entry!r} is not an IP network") from None
        return value

    @field_validator("shard")
    @classmethod
    def _shard_in_range(cls, value: str | None) -> str | None:
        if value is not None:
            index, count = (int(part) for part in value.split("/"))
            if index >= count:
                raise ValueError(f"shard {value!r}: i must be below n (0 <= i < n)")
        return value

    http_timeout: float = Field(default=30.0, gt=0, description="Total timeout per provider call.")
    http_retries: int = Field(default=4, ge=0, description="Retries per provider call.")
    http_backoff_base: float = Field(
        default=0.5, gt=0, description="Base seconds of the full-jitter exponential backoff."
    )
    http_backoff_max: float = Field(
        default=30.0, gt=0, description="Cap in seconds of one backoff or Retry-After wait."
    )
    tensordock_image: str = Field(
        default="ubuntu2404", description="TensorDock v2 image for new instances."
    )
    wolf_image: str = Field(
        default=WOLF_SERVER_IMAGE,
        description="Wolf server image the user data runs on TensorDock VMs (pin a digest).",
    )
    tensordock_storage_gb: int = Field(
        default=100, ge=100, description="Disk per TensorDock instance (v2 minimum is 100 GB)."
    )
    cloudypad_cli: str = Field(default="cloudypad", description="Path of the CloudyPad CLI.")
    cloudypad_home: str | None = Field(
        default=None,
        description=(
            "CLOUDYPAD_HOME for the CLI (state root); unset: $CLOUDYPAD_HOME, else "
            "~/.cloudypad of the operator's HOME."
        ),
    )
    cloudypad_env: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra non-secret environment for the CloudyPad CLI (JSON object, e.g. proxy "
            "settings); the CLI otherwise gets only PATH, HOME, locale and its credentials."
        ),
    )
    cloudypad_power_timeout: int = Field(
        default=900, gt=0, description="Seconds passed as `--timeout` to CloudyPad start/stop."
    )
    cloudypad_timeout: float = Field(
        default=1800.0, gt=0, description="Seconds a CloudyPad CLI call may take."
    )
    cloudypad_max_concurrent_runs: int = Field(
        default=4,
        ge=1,
        description=(
            "CloudyPad CLI runs at once, across all CloudyPad providers (each loads every "
            "cloud SDK and most run Pulumi); further calls wait for a slot."
        ),
    )
    cloudypad_eur_usd_rate: float = Field(
        default=1.16,
        gt=0,
        description="USD per EUR for CloudyPad clouds that price in EUR (Scaleway).",
    )

    # Mongo mirror.
    mongodb_uri: SecretStr | None = Field(
        default=None, description="MongoDB URI; the mirror is off when unset."
    )
    mongodb_database: str = Field(default="gamevm", description="Database of the mirror.")
    mongodb_timeout_ms: int = Field(
        default=2000, gt=0, description="Server selection / socket timeout in ms."
    )
    mirror_resync_interval: float = Field(
        default=300.0, gt=0, description="Seconds between full resyncs of the mirror."
    )
    mirror_resync_page_size: int = Field(
        default=100,
        ge=1,
        description="GameVMs per page of the resync's LIST (one page is held at a time).",
    )
    terminated_retention_seconds: int = Field(
        default=30 * 24 * 3600,
        gt=0,
        description="How long terminated VM documents are kept (TTL index, or the purge).",
    )
    mirror_purge: Literal["auto", "always", "off"] = Field(
        default="auto",
        description="Who expires terminated VM documents: `auto` = the operator purges them "
        "when the server cannot hold the TTL index (no TTL or no partial filters), else the "
        "server; `always` = the operator too (a server that accepts TTL but never expires); "
        "`off` = nobody.",
    )
    mirror_purge_interval: float = Field(
        default=60.0, gt=0, description="Seconds between the operator's purge passes."
    )
    mirror_purge_batch: int = Field(
        default=500, gt=0, le=10_000, description="Most documents one purge batch deletes."
    )
    mirror_retry_max_delay: float = Field(
        default=5.0,
        gt=0,
        description="Longest wait (seconds) between mirror write retries while MongoDB is down.",
    )
