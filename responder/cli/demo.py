"""`revocd demo`: the responder on embedded defaults with a demo PKI (`make run`)."""

import argparse


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..roles.demo import run_demo

    return run_demo(args)
