"""The one `revocd` command line. Thin: each command is a module of this package with
`add_parser(sub)`, which registers its options and its handler, and `run(args)`, which
imports the work only when the command runs (building the parser loads no event loop,
no store driver and no metrics registry)."""

import argparse
import os
from collections.abc import Callable, Sequence

from .. import __version__
from ..observability.logs import FORMAT_ENV, setup_logging
from . import (
    audit,
    crl,
    demo,
    imports,
    inventory,
    presign,
    probe,
    push,
    report,
    responder_key,
    serve,
)

# In `revocd --help` order.
COMMANDS = (
    demo,
    serve,
    presign,
    responder_key,
    crl,
    imports,
    push,
    inventory,
    audit,
    probe,
    report,
)
# Long-running commands log JSON by default (for log shippers); the others text.
SERVICES = {"serve", "presign"}

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="revocd",
        description="OCSP and CRL revocation service for certificate authorities.",
    )
    parser.add_argument("--version", action="version", version=f"revocd {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="operational log format on stderr (default: json for serve, presign and "
        "crl run; text otherwise; or REVOCD_LOG_FORMAT)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fmt = args.log_format or os.environ.get(FORMAT_ENV)
    if fmt is None:
        fmt = (
            "json"
            if args.command in SERVICES or getattr(args, "crl_action", "") == "run"
            else "text"
        )
    os.environ[FORMAT_ENV] = fmt  # data plane workers are spawned and read it back
    setup_logging(args.log_level, fmt)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)
