"""Runs the operator: `gamevm-operator run` (or `kopf run -m gamevm.main`)."""

import asyncio
import logging

import kopf

import gamevm.handlers.emulatorconfig
import gamevm.handlers.gamevm
import gamevm.handlers.lifecycle  # noqa: F401  # importing registers the handlers
from gamevm.logging_setup import configure_logging
from gamevm.settings import Settings


def run(*, verbose: bool = False) -> int:
    """Run until SIGTERM/SIGINT; one replica, no peering (the Deployment uses Recreate)."""
    settings = Settings()
    configure_logging(settings.log_format, level=logging.DEBUG if verbose else logging.INFO)
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not settings.watch_namespaces,
            namespaces=settings.watch_namespaces,
        )
    )
    return 0
