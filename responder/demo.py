"""`revocd demo`: a demo PKI and OCSP answers signed by the protocol core.

The directory holds root.pem, issuer.pem, responder.pem (delegated OCSP
signer) with their keys, and certs/{good,revoked,unknown}.pem with keys. The
leaf certificates carry AIA OCSP and CRL DP URLs pointing at the data plane
address given on the command line. An existing directory is reused.
"""

import argparse
import asyncio
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from . import pki
from .ocsp import CertStatus, HashAlgorithm, IssuerHashes, RevocationReason, SingleAnswer
from .signing import ResponderIdentity, SoftwareSigner

SAMPLES = ("good", "revoked", "unknown")
# Demo validity: 4 days, inside the 8 h .. 10 days the BRs allow (BR 4.9.10).
VALIDITY_SECONDS = 4 * 86400
BACKDATE_SECONDS = 300


@dataclass(frozen=True)
class DemoPKI:
    directory: Path
    root: x509.Certificate
    issuer: x509.Certificate
    responder: x509.Certificate
    responder_key_path: Path
    samples: dict[str, x509.Certificate]

    @classmethod
    def create_or_load(cls, directory: Path, base_url: str) -> "DemoPKI":
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "certs").mkdir(exist_ok=True)
        if not (directory / "issuer.pem").exists():
            _create(directory, base_url)

        def load(name: str) -> x509.Certificate:
            return x509.load_pem_x509_certificate((directory / name).read_bytes())

        return cls(
            directory=directory,
            root=load("root.pem"),
            issuer=load("issuer.pem"),
            responder=load("responder.pem"),
            responder_key_path=directory / "responder.key",
            samples={name: load(f"certs/{name}.pem") for name in SAMPLES},
        )


def _create(directory: Path, base_url: str) -> None:
    root = pki.make_root("revocd demo root")
    issuer = pki.make_intermediate("revocd demo issuing CA", root)
    responder = pki.make_responder(issuer)
    root.write(directory / "root.pem", directory / "root.key")
    issuer.write(directory / "issuer.pem", directory / "issuer.key")
    responder.write(directory / "responder.pem", directory / "responder.key")
    for name in SAMPLES:
        serial = x509.random_serial_number()
        leaf = pki.make_leaf(
            issuer,
            serial,
            f"{name}.demo.revocd.test",
            ocsp_url=f"{base_url}/",
            crl_url=f"{base_url}/crl/demo.crl",
        )
        leaf.write(directory / "certs" / f"{name}.pem", directory / "certs" / f"{name}.key")


async def sign_sample_answers(demo: DemoPKI, now: int) -> dict[str, bytes]:
    """One signed OCSP response per sample certificate (SHA-1 CertID, no nonce)."""
    identity = ResponderIdentity(
        SoftwareSigner.from_pem_file(demo.responder_key_path), demo.issuer, demo.responder
    )
    hashes = IssuerHashes.from_certificate(demo.issuer)
    out: dict[str, bytes] = {}
    for name, cert in demo.samples.items():
        cert_id = hashes.cert_id(HashAlgorithm.SHA1, cert.serial_number)
        this_update = now - BACKDATE_SECONDS
        if name == "revoked":
            answer = SingleAnswer(
                cert_id,
                CertStatus.REVOKED,
                this_update,
                this_update + VALIDITY_SECONDS,
                revoked_at=this_update - 3600,
                reason=RevocationReason.KEY_COMPROMISE,
            )
        else:
            status = CertStatus.GOOD if name == "good" else CertStatus.UNKNOWN
            answer = SingleAnswer(cert_id, status, this_update, this_update + VALIDITY_SECONDS)
        out[name] = await identity.sign([answer], now)
    return out


def run_demo(args: argparse.Namespace) -> int:
    base_url = f"http://{args.host}:{args.port}"
    directory = Path(args.dir)
    demo = DemoPKI.create_or_load(directory, base_url)
    answers = asyncio.run(sign_sample_answers(demo, int(time.time())))
    responses = directory / "responses"
    responses.mkdir(exist_ok=True)
    for name, der in answers.items():
        (responses / f"{name}.der").write_bytes(der)
    d = shlex.quote(str(directory))
    print(f"demo PKI in {directory}; signed OCSP answers in {responses}")
    print("verify them with openssl:")
    for name in SAMPLES:
        print(
            f"  openssl ocsp -respin {d}/responses/{name}.der -issuer {d}/issuer.pem "
            f"-cert {d}/certs/{name}.pem -CAfile {d}/root.pem -no_nonce"
        )
    print(
        "the network responder (data plane on "
        f"{base_url}) is not part of this version; the answers above come from the protocol core"
    )
    return 0
