"""`python -m gamevm_dev.simulators.tensordock`: serve the simulator until SIGTERM/SIGINT."""

import argparse
import json
from pathlib import Path

from aiohttp import web

from gamevm_dev.simulators.ports import LOOPBACK
from gamevm_dev.simulators.tensordock.app import DEFAULT_TOKEN, create_app


def main(argv: list[str] | None = None) -> None:
    """Parse flags and serve."""
    parser = argparse.ArgumentParser(
        prog="python -m gamevm_dev.simulators.tensordock", description="TensorDock v2 API simulator"
    )
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the accepted bearer token")
    parser.add_argument("--state-file", type=Path, default=None, help="persist VMs here")
    parser.add_argument("--delay-scale", type=float, default=1.0, help="0 = instant")
    parser.add_argument("--seed", type=int, default=0, help="fault RNG seed")
    parser.add_argument("--faults", default=None, help="initial faults as JSON")
    parser.add_argument("--rate-limit", type=int, default=100, help="requests per minute")
    args = parser.parse_args(argv)
    app = create_app(
        token=args.token,
        delay_scale=args.delay_scale,
        seed=args.seed,
        faults=json.loads(args.faults) if args.faults else None,
        rate_limit_per_minute=args.rate_limit,
        state_file=args.state_file,
    )
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
