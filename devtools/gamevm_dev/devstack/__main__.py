"""`python -m gamevm_dev.devstack prefetch`: find or build every binary of the local
stack now (CI does this first, so build time shows as its own step)."""

from __future__ import annotations

import argparse
import sys
import time

from gamevm_dev.devstack import binaries
from gamevm_dev.devstack.stack import stderr_progress

ALL_BINARIES = (
    binaries.ETCD,
    binaries.KUBE_APISERVER,
    binaries.KUBE_CONTROLLER_MANAGER,
    binaries.KUBECTL,
    binaries.FERRETDB,  # the tests' second Mongo-wire server (ferretdb.py)
)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m gamevm_dev.devstack", description=__doc__)
    parser.add_argument("action", choices=["prefetch"])
    parser.parse_args(argv)
    started = time.monotonic()
    try:
        found = binaries.resolve(list(ALL_BINARIES), stderr_progress)
    except binaries.BinaryNotFoundError as exc:
        print(f"[dev] FAILED: {exc}", file=sys.stderr)
        return 1
    for name, path in found.items():
        print(f"{name}: {path}")
    try:
        from gamevm_dev.devstack import mongo
    except ImportError:
        print("mongo: pending (gamevm_dev.devstack.mongo not there yet)")
    else:
        print(f"mongo: {mongo.mongo_binary()}")
    from gamevm_dev.devstack import ferretdb

    print(f"postgres: {ferretdb.postgres_bin_dir()}")
    print(f"[dev] binaries ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
