"""The one `revocd` command line. Thin: parsing and dispatch; the work lives in modules."""

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .logs import FORMAT_ENV, setup_logging

SERVICES = {"serve", "presign"}

Handler = Callable[[argparse.Namespace], int]


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def _serve(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config

    try:
        workers = args.workers or load_config(args.config).server.workers
        if workers > 1:
            from .metrics_export import enable_multiprocess

            enable_multiprocess()
        from .service import serve_forever

        return serve_forever(args.config, workers=args.workers, presign=args.presign, crl=args.crl)
    except ConfigError as exc:
        print(f"revocd serve: {exc}", file=sys.stderr)
        return 2


def _crl(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .service import crl_command

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


def _presign(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .service import presign_forever

    try:
        return presign_forever(args.config, once=args.once, metrics_port=args.metrics_port)
    except ConfigError as exc:
        print(f"revocd presign: {exc}", file=sys.stderr)
        return 2


def _import(args: argparse.Namespace) -> int:
    from .importcmd import run_import_command

    return run_import_command(args)


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

    demo = sub.add_parser("demo", help="run the responder on embedded defaults with a demo PKI")
    demo.add_argument("--dir", default="./revocd-demo", help="demo directory (created or reused)")
    demo.add_argument("--host", default="127.0.0.1", help="address of both planes")
    demo.add_argument("--port", type=int, default=8080, help="data plane port (in AIA/CRL URLs)")
    demo.add_argument("--control-port", type=int, default=8081, help="control plane port")
    demo.add_argument("--certs", type=int, default=1000, help="issued certificates to register")
    demo.add_argument(
        "--hsm",
        action="store_true",
        help="keep the responder key in a SoftHSM2 token (PKCS#11) under DIR/softhsm",
    )
    demo.set_defaults(handler=_demo)

    serve = sub.add_parser("serve", help="run the responder from a config file")
    serve.add_argument("-c", "--config", required=True, help="revocd.toml")
    serve.add_argument(
        "--workers",
        type=int,
        help="data plane processes sharing the port (overrides server.workers)",
    )
    serve.add_argument(
        "--no-presign",
        dest="presign",
        action="store_false",
        help="leave pre-signing to a separate `revocd presign` (sets presign.enabled = false)",
    )
    serve.add_argument(
        "--no-crl",
        dest="crl",
        action="store_false",
        help="leave CRLs to a separate `revocd crl run` (sets server.crl_generator = false)",
    )
    serve.set_defaults(handler=_serve)

    presign = sub.add_parser(
        "presign", help="keep a fresh pre-signed answer in the store for every certificate"
    )
    presign.add_argument("-c", "--config", required=True, help="revocd.toml")
    presign.add_argument("--once", action="store_true", help="one sweep, then exit")
    presign.add_argument(
        "--metrics-port", type=int, help="serve /metrics on this port (on control.host)"
    )
    presign.set_defaults(handler=_presign)

    from .keycmd import add_parser as add_key_parser

    add_key_parser(sub)

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
    crl.set_defaults(handler=_crl)

    imp = sub.add_parser(
        "import",
        help="import an OpenSSL index.txt, a CRL or a directory of certificates",
        description="Apply an existing CA's history as events; importing twice changes nothing.",
    )
    imp.add_argument("-c", "--config", required=True, help="revocd.toml")
    imp.add_argument("--issuer", required=True, help="issuer name from the config")
    imp.add_argument("kind", choices=["index", "crl", "certs"], help="what PATH holds")
    imp.add_argument("path", help="index.txt, CRL file (DER or PEM), or certificate directory")
    imp.set_defaults(handler=_import)

    from .pushcmd import add_parser as add_push_parser

    add_push_parser(sub)

    from .auditcmd import add_parser as add_audit_parser

    add_audit_parser(sub)
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
