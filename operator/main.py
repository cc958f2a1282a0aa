"""Runs the operator: `gamevm-operator run` (or `kopf run -m gamevm.main`)."""

import asyncio
import logging
import os
import socket
import uuid

import kopf

import gamevm.handlers.emulatorconfig
import gamevm.handlers.gamevm
import gamevm.handlers.lifecycle  # noqa: F401  # importing registers the handlers
from gamevm.handlers.http import start_standby_server
from gamevm.handlers.kube import load_api_client
from gamevm.handlers.leader import LeaderElector, LeaseConfig
from gamevm.limits import raise_open_files_limit
from gamevm.logging_setup import configure_logging
from gamevm.memory import start_trimming
from gamevm.services.sharding import parse_shard
from gamevm.settings import Settings

log = logging.getLogger(__name__)

EXIT_LOST_LEADERSHIP = 3
HARD_EXIT_AFTER_LOSS_SECONDS = 3.0
"""A leader that lost its Lease is gone within this, whatever kopf is still finishing."""


def run(*, verbose: bool = False) -> int:
    """Run until SIGTERM/SIGINT (or until the Lease is lost: exit code 3, restart)."""
    settings = Settings()
    configure_logging(settings.log_format, level=logging.DEBUG if verbose else logging.INFO)
    raise_open_files_limit()
    return asyncio.run(_run(settings))


async def _run(settings: Settings) -> int:
    elector: LeaderElector | None = None
    stop = asyncio.Event()
    renewing: asyncio.Task[None] | None = None
    if settings.leader_election:
        elector = LeaderElector(load_api_client(1), _lease_config(settings))
        # A standby answers its liveness probe while it waits; the leader's own servers
        # replace this one.
        try:
            standby = await start_standby_server(settings)
        except OSError as exc:
            log.error(
                "cannot serve HTTP on %s:%d: %s",
                settings.http_host,
                settings.http_port,
                exc.strerror or exc,
            )
            return 1
        try:
            await elector.acquire()
        finally:
            await standby.cleanup()
        renewing = asyncio.create_task(elector.hold(lambda: _lost(stop)))
    # Freed start-up memory back to the system (bench/README.md, memory).
    trimming = start_trimming(settings.memory_trim_interval)
    try:
        await kopf.operator(
            standalone=True,
            clusterwide=not settings.watch_namespaces,
            namespaces=settings.watch_namespaces,
            stop_flag=stop,
        )
    finally:
        if trimming is not None:
            trimming.cancel()
        if renewing is not None:
            renewing.cancel()
        if elector is not None:
            await elector.release()
    return EXIT_LOST_LEADERSHIP if elector is not None and stop.is_set() else 0


def _lost(stop: asyncio.Event) -> None:
    # The clean stop is kopf's own: its stop flag. It has no bound, so the process still
    # ends before another replica may take the Lease. kopf (1.45) offers no bounded one:
    # - settings.process.ultimate_exiting_timeout ignores a stop by stop flag, counts
    #   only from SIGTERM/SIGINT, and ends with SIGKILL (exit 137, not 3);
    # - after its root tasks stop, kopf gives spawned tasks 5 s before cancelling them,
    #   then waits for them without a timeout (a task that swallows cancellation holds
    #   it forever);
    # - asyncio.run then joins the default executor's threads (asyncio.to_thread calls
    #   in flight: kubernetes or pymongo calls with their own long timeouts);
    # - an error raised from a daemon or handler is retried by kopf, never stops it.
    stop.set()
    asyncio.get_running_loop().call_later(
        HARD_EXIT_AFTER_LOSS_SECONDS, os._exit, EXIT_LOST_LEADERSHIP
    )


def lease_name(settings: Settings) -> str:
    """One Lease per shard: each shard elects its own leader (docs/scaling.md)."""
    shard = parse_shard(settings.shard)
    if shard is None:
        return settings.leader_lease_name
    return f"{settings.leader_lease_name}-shard-{shard.index}-of-{shard.count}"


def _lease_config(settings: Settings) -> LeaseConfig:
    identity = settings.leader_identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    return LeaseConfig(
        namespace=settings.namespace,
        name=lease_name(settings),
        identity=identity,
        lease_seconds=settings.leader_lease_seconds,
        renew_deadline_seconds=settings.leader_renew_deadline_seconds,
        retry_seconds=settings.leader_retry_seconds,
        pod_name=settings.pod_name,
    )
