"""`revocd serve`: the responder from a config file, both planes and background work."""

import argparse
import sys


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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
    serve.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_config

    try:
        workers = args.workers or load_config(args.config).server.workers
        if workers > 1:
            # Before anything imports prometheus_client's registry (service does).
            from ..observability.export import enable_multiprocess

            enable_multiprocess()
        from ..roles.serve import serve_forever

        return serve_forever(args.config, workers=args.workers, presign=args.presign, crl=args.crl)
    except ConfigError as exc:
        print(f"revocd serve: {exc}", file=sys.stderr)
        return 2
