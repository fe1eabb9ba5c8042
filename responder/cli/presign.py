"""`revocd presign`: the pre-signer alone, next to data-plane-only `revocd serve`."""

import argparse
import sys


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    presign = sub.add_parser(
        "presign", help="keep a fresh pre-signed answer in the store for every certificate"
    )
    presign.add_argument("-c", "--config", required=True, help="revocd.toml")
    presign.add_argument("--once", action="store_true", help="one sweep, then exit")
    presign.add_argument(
        "--metrics-port", type=int, help="serve /metrics on this port (on control.host)"
    )
    presign.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..roles.presign import presign_forever

    try:
        return presign_forever(args.config, once=args.once, metrics_port=args.metrics_port)
    except ConfigError as exc:
        print(f"revocd presign: {exc}", file=sys.stderr)
        return 2
