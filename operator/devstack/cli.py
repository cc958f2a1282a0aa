"""`gamevm-operator dev up|down|status`: the local stack from the command line.

Progress goes to stderr; stdout carries only shell-sourceable `export` lines, so
`eval "$(gamevm-operator dev up)"` works.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gamevm.devstack.binaries import BinaryNotFoundError
from gamevm.devstack.stack import Stack, StackError
from gamevm.devstack.state import PortTakenError, default_state_dir
from gamevm.devstack.steps import default_steps


def _print_exports(stack: Stack) -> None:
    for line in stack.state.export_lines():
        print(line)
    if "GAMEVM_MONGODB_URI" not in stack.state.exports:
        print("# GAMEVM_MONGODB_URI: the Mongo-compatible server is not running (pending)")
    sys.stdout.flush()


def dev_main(action: str, args: argparse.Namespace) -> int:
    """Run `dev up`, `dev down` or `dev status`; returns the exit code."""
    root = Path(args.state_dir) if args.state_dir else default_state_dir()
    stack = Stack(root, steps=default_steps(with_operator=not args.no_operator))
    if action == "up":
        started = time.monotonic()
        try:
            stack.up()
        except (StackError, BinaryNotFoundError, PortTakenError) as exc:
            print(f"[dev] FAILED: {exc}", file=sys.stderr)
            print(
                f"[dev] logs: {stack.state.logs}; stop with `gamevm-operator dev down`",
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
