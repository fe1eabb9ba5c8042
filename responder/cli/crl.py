"""`revocd crl`: the CRL generator alone (`run`), or one CRL into a file (`build`)."""

import argparse
import sys


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    crl = sub.add_parser("crl", help="run the CRL generator, or build one CRL")
    crl_actions = crl.add_subparsers(dest="crl_action", metavar="ACTION", required=True)
    crl_run = crl_actions.add_parser("run", help="the CRL generator alone (no OCSP)")
    crl_run.add_argument("-c", "--config", required=True)
    crl_run.add_argument(
        "--metrics-port", type=int, help="serve /metrics on this port (on control.host)"
    )
    crl_build = crl_actions.add_parser("build", help="build one CRL from the store into a file")
    crl_build.add_argument("-c", "--config", required=True)
    crl_build.add_argument("--issuer", required=True)
    crl_build.add_argument("--shard", type=int, default=0)
    crl_build.add_argument("--out", required=True)
    crl.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..roles.crl import crl_command

    try:
        return crl_command(
            args.config,
            args.crl_action,
            getattr(args, "issuer", None),
            getattr(args, "out", None),
            getattr(args, "shard", 0),
            getattr(args, "metrics_port", None),
        )
    except ConfigError as exc:
        print(f"revocd crl: {exc}", file=sys.stderr)
        return 2
