"""`gamevm-dev up|down|status|prefetch`: the local stack from the command line.

Progress goes to stderr; stdout carries only shell-sourceable `export` lines, so
`eval "$(gamevm-dev up)"` works.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gamevm_dev.devstack.binaries import BinaryNotFoundError
from gamevm_dev.devstack.stack import Stack, StackError
from gamevm_dev.devstack.state import PortTakenError, default_state_dir
from gamevm_dev.devstack.steps import default_steps

TENSORDOCK_URL_ENV = "GAMEVM_DEV_TENSORDOCK_URL"
TENSORDOCK_TOKEN_ENV = "GAMEVM_DEV_TENSORDOCK_TOKEN"  # noqa: S105 - a variable name


def _print_exports(stack: Stack) -> None:
    for line in stack.state.export_lines():
        print(line)
    if "GAMEVM_MONGODB_URI" not in stack.state.exports:
        print("# GAMEVM_MONGODB_URI: the Mongo-compatible server is not running (pending)")
    sys.stdout.flush()


def dev_main(action: str, args: argparse.Namespace) -> int:
    """Run `dev up`, `dev down` or `dev status`; returns the exit code."""
    root = Path(args.state_dir) if args.state_dir else default_state_dir()
    try:
        steps = default_steps(
            with_operator=not args.no_operator,
            tensordock_url=args.tensordock_url,
            tensordock_token=args.tensordock_token,
            cloudypad_cli=args.cloudypad_cli,
        )
    except ValueError as exc:
        print(f"[dev] {exc}", file=sys.stderr)
        return 2
    stack = Stack(root, steps=steps)
    if action == "up":
        started = time.monotonic()
        try:
            stack.up()
        except (StackError, BinaryNotFoundError, PortTakenError) as exc:
            print(f"[dev] FAILED: {exc}", file=sys.stderr)
            print(
                f"[dev] logs: {stack.state.logs}; stop with `gamevm-dev down`",
                file=sys.stderr,
            )
            return 1
        print(f"[dev] stack up in {time.monotonic() - started:.1f}s ({root})", file=sys.stderr)
        _print_exports(stack)
        return 0
    if action == "down":
        stopped = stack.down()
        print(f"[dev] stopped {len(stopped)} processes; data kept in {root}", file=sys.stderr)
        return 0
    if action == "status":
        ok, lines = stack.status()
        for line in lines:
            print(f"[dev] {line}", file=sys.stderr)
        _print_exports(stack)
        return 0 if ok else 1
    print(f"unknown action {action!r}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests."""
    parser = argparse.ArgumentParser(prog="gamevm-dev", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status", "prefetch"])
    parser.add_argument("--state-dir", default=None, help="state folder (default: .dev)")
    parser.add_argument("--no-operator", action="store_true", help="do not start the operator")
    parser.add_argument(
        "--tensordock-url",
        default=os.environ.get(TENSORDOCK_URL_ENV) or None,
        help="a TensorDock-compatible endpoint (base URL ending in /api/v2) to use instead "
        f"of the bundled simulator (env {TENSORDOCK_URL_ENV})",
    )
    parser.add_argument(
        "--tensordock-token",
        default=os.environ.get(TENSORDOCK_TOKEN_ENV) or None,
        help=f"its bearer token (env {TENSORDOCK_TOKEN_ENV}; default: the simulator's)",
    )
    parser.add_argument(
        "--cloudypad-cli",
        default=None,
        metavar="PATH|real",
        help="a CloudyPad CLI instead of the simulator; `real` builds and uses the vendored "
        "CloudyPad 0.45.1 (../shared/vendor/build-cloudypad.sh, "
        "GAMEVM_CLOUDYPAD_BUILD_SCRIPT overrides)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gamevm-dev` console script."""
    args = build_parser().parse_args(argv)
    if args.action == "prefetch":
        from gamevm_dev.devstack.__main__ import main as prefetch_main

        return prefetch_main(["prefetch"])
    return dev_main(args.action, args)


if __name__ == "__main__":
    sys.exit(main())
