"""The open-file limit: the soft limit raised to the hard one at start, as Go programs do.

Every connection is a file descriptor: kopf's to the API server (it sets no limit), VM
reports and heartbeats, Wolf probes, provider calls. A thousand VMs placed together peak
at ~750 (bench/README.md, file descriptors); container runtimes often start processes with
a soft limit of 1,024 under a much higher hard one.
"""

import logging
import resource

log = logging.getLogger(__name__)

UNLIMITED_TARGET = 1 << 20
"""The soft limit asked for when the hard one is unlimited."""


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("open files limit stays %d (hard %d): %s", soft, hard, exc)
        return soft, soft
    log.info("open files limit raised from %d to %d", soft, target)
    return soft, target
