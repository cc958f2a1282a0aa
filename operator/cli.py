"""The `gamevm-operator` console script: run, crds."""

import argparse
import sys
from collections.abc import Sequence


def _cmd_run(args: argparse.Namespace) -> int:
    from gamevm.main import run

    return run(verbose=args.verbose)


def _cmd_crds(args: argparse.Namespace) -> int:
    from gamevm.crdgen import check_crds, write_crds

    if args.check:
        stale = check_crds(args.out)
        for path in stale:
            print(f"stale: {path} (run `gamevm-operator crds`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_crds(args.out):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests."""
    parser = argparse.ArgumentParser(prog="gamevm-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument("--verbose", action="store_true")
    run.set_defaults(func=_cmd_run)

    crds = sub.add_parser("crds", help="generate the CRD YAML from the models")
    crds.add_argument("--out", default="crds", help="output folder (default: crds)")
    crds.add_argument("--check", action="store_true", help="exit 1 when crds/ is stale")
    crds.set_defaults(func=_cmd_crds)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
