"""`revocd probe`: check what the public URLs serve (through the CDN) against the
standards and the store, once or every `probe.interval_seconds`."""

import argparse
import sys


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    probe = sub.add_parser(
        "probe",
        help="fetch OCSP answers, CRL shards and the CCADB list through the public URLs "
        "and check them against the standards and the store",
    )
    probe.add_argument("-c", "--config", required=True, help="revocd.toml")
    probe.add_argument(
        "--once", action="store_true", help="one round: print its report, exit 1 on problems"
    )
    probe.add_argument(
        "--connect-to",
        default="",
        metavar="HOST:PORT",
        help="send every request to this address, with each URL's own Host (probe one edge, "
        "or an origin whose public names do not resolve here)",
    )
    probe.add_argument(
        "--metrics-port", type=int, help="serve /metrics on this port (on control.host)"
    )
    probe.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..roles.probe import probe_command

    try:
        return probe_command(args.config, args.once, args.connect_to, args.metrics_port)
    except ConfigError as exc:
        print(f"revocd probe: {exc}", file=sys.stderr)
        return 2
