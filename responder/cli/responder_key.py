"""`revocd responder-key`: the command's options. The work is in keyactions, imported
only when the command runs, so building the parser stays light."""

import argparse


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    keys = sub.add_parser("responder-key", help="responder key lifecycle (HSM or file)")
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)

    gen = actions.add_parser("generate", help="generate a responder key in the HSM or a file")
    gen.add_argument("-c", "--config", required=True)
    gen.add_argument("--issuer", required=True)
    gen.add_argument("--out", help="PEM file for a software key (without [hsm])")
    gen.add_argument(
        "--key-type", default="ec-p256", choices=["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"]
    )

    csr = actions.add_parser("csr", help="write a certification request for the responder key")
    csr.add_argument("-c", "--config", required=True)
    csr.add_argument("--issuer", required=True)
    csr.add_argument("--key", help="software key file (default: issuers.<name>.responder_key)")
    csr.add_argument("--cn", default=None, help="subject common name")
    csr.add_argument("--out", required=True)

    inst = actions.add_parser("install", help="check and install a signed responder certificate")
    inst.add_argument("-c", "--config", required=True)
    inst.add_argument("--issuer", required=True)
    inst.add_argument("certificate")

    check = actions.add_parser("check", help="days left on each responder certificate")
    check.add_argument("-c", "--config", required=True)
    keys.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..keys.actions import run

    return run(args)
