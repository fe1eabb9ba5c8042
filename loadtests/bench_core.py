"""Micro-benchmark of the OCSP protocol core: decode, encode, encode+sign.

Runs the Cython modules and their pure-Python twins side by side in one
process, with cryptography's OCSP parser and builder as anchors, and prints a
table. With --write FILE it replaces the bench_core section of that Markdown
file (docs/benchmarks.md).

    .venv/bin/python loadtests/bench_core.py [--seconds 0.5] [--write docs/benchmarks.md]
"""

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchdoc import cpu_model, replace_section
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp

from responder.ocsp import (
    CertStatus,
    HashAlgorithm,
    IssuerHashes,
    RevocationReason,
    _request_py,
    _response_py,
)
from responder.ocsp.fast import REQUEST_COMPILED, RESPONSE_COMPILED, request_codec, response_codec
from responder.signing import SoftwareSigner
from responder.testing import pki


def rate(fn: Callable[[], object], seconds: float, repeats: int = 5) -> float:
    """Best-of-`repeats` operations per second; each repeat runs about `seconds`."""
    n = 1
    while True:  # calibrate a batch that takes ~1/10 of the budget
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 > seconds / 10:
            break
        n *= 2
    best = 0.0
    for _ in range(repeats):
        batches = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(n):
                fn()
            batches += 1
        best = max(best, batches * n / (time.perf_counter() - t0))
    return best


def typical_request(issuer: pki.Issued, leaf: pki.Issued) -> bytes:
    """What openssl and browsers send: one SHA-1 CertID and a 16-byte nonce (~100 bytes)."""
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate(leaf.cert, issuer.cert, hashes.SHA1())
    builder = builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5, help="per repeat")
    parser.add_argument("--write", type=Path, help="Markdown file whose section to replace")
    parser.add_argument("--cpu", type=int, default=1, help="core to pin to (-1: no pinning)")
    args = parser.parse_args()
    if not (REQUEST_COMPILED and RESPONSE_COMPILED):
        print("compiled modules are not built; run `make ext` first", file=sys.stderr)
        return 1
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})

    root = pki.make_root("bench root")
    issuer = pki.make_intermediate("bench issuer", root)
    responder = pki.make_responder(issuer)
    leaf = pki.make_leaf(issuer, x509.random_serial_number(), "bench.test")
    req = typical_request(issuer, leaf)
    signer = SoftwareSigner(responder.key)
    key_hash = x509.SubjectKeyIdentifier.from_public_key(responder.key.public_key()).digest
    cert_der = responder.cert.public_bytes(serialization.Encoding.DER)
    cert_id = IssuerHashes.from_certificate(issuer.cert).cert_id(
        HashAlgorithm.SHA1, leaf.cert.serial_number
    )
    now = int(time.time())
    nonce = os.urandom(16)

    def encode(codec: object, sign: bool) -> Callable[[], bytes]:
        single = codec.encode_single_response  # type: ignore[attr-defined]
        data = codec.encode_response_data  # type: ignore[attr-defined]
        envelope = codec.encode_ocsp_response  # type: ignore[attr-defined]
        alg = signer.signature_algorithm

        def run() -> bytes:
            s = single(
                cert_id,
                int(CertStatus.REVOKED),
                now - 3600,
                int(RevocationReason.KEY_COMPROMISE),
                now,
                now + 4 * 86400,
            )
            tbs = data(key_hash, now, [s], nonce)
            sig = signer.sign_sync(tbs) if sign else b"\x00" * 72
            return envelope(tbs, alg, sig, [cert_der])

        return run

    def cryptography_builder() -> bytes:
        this_update = dt.datetime.fromtimestamp(now, dt.UTC)
        builder = (
            x509_ocsp.OCSPResponseBuilder()
            .add_response(
                cert=leaf.cert,
                issuer=issuer.cert,
                algorithm=hashes.SHA1(),
                cert_status=x509_ocsp.OCSPCertStatus.REVOKED,
                this_update=this_update,
                next_update=this_update + dt.timedelta(days=4),
                revocation_time=this_update - dt.timedelta(hours=1),
                revocation_reason=x509.ReasonFlags.key_compromise,
            )
            .responder_id(x509_ocsp.OCSPResponderEncoding.HASH, responder.cert)
            .certificates([responder.cert])
            .add_extension(x509.OCSPNonce(nonce), critical=False)
        )
        return builder.sign(responder.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    s = args.seconds
    rows: list[tuple[str, float]] = []

    def measure(name: str, fn: Callable[[], object]) -> float:
        value = rate(fn, s)
        rows.append((name, value))
        print(f"{name:62s} {value:>12,.0f}/s  {1e6 / value:8.2f} µs", flush=True)
        return value

    dec_c = measure("decode request: Cython", lambda: request_codec.decode_request(req))
    dec_p = measure("decode request: pure-Python twin", lambda: _request_py.decode_request(req))
    dec_x = measure(
        "decode request: cryptography load_der_ocsp_request (anchor)",
        lambda: x509_ocsp.load_der_ocsp_request(req).serial_number,
    )
    enc_c = measure("encode response, no signing: Cython", encode(response_codec, False))
    enc_p = measure("encode response, no signing: pure-Python twin", encode(_response_py, False))
    sign_raw = measure("ECDSA P-256 sign only (cryptography)", lambda: signer.sign_sync(req))
    es_c = measure("encode + sign P-256: Cython", encode(response_codec, True))
    es_p = measure("encode + sign P-256: pure-Python twin", encode(_response_py, True))
    es_x = measure(
        "encode + sign P-256: cryptography OCSPResponseBuilder (anchor)", cryptography_builder
    )

    cpu = cpu_model()
    table = [
        "| operation | per second | µs each |",
        "|---|---:|---:|",
        *(f"| {name} | {value:,.0f} | {1e6 / value:.2f} |" for name, value in rows),
    ]
    ratios = [
        f"- decode: Cython is {dec_c / dec_p:.1f}x the twin and "
        f"{dec_c / dec_x:.1f}x cryptography's parser",
        f"- encode (no signing): Cython is {enc_c / enc_p:.1f}x the twin",
        f"- encode + sign: Cython reaches {es_c / sign_raw:.2f} of the raw P-256 sign rate, "
        f"{es_c / es_p:.2f}x the twin, {es_c / es_x:.2f}x cryptography's builder",
    ]
    section = [
        "## OCSP protocol core (micro-benchmark)",
        "",
        f"Measured {dt.date.today().isoformat()} on {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, pinned to core {args.cpu}, best of 5 runs "
        f"of {s} s each. Typical request: {len(req)} bytes (one SHA-1 CertID, 16-byte "
        "nonce); the answer is revoked with reason, nonce echoed and the delegated "
        "responder certificate embedded.",
        "",
        "Command: `.venv/bin/python loadtests/bench_core.py --write docs/benchmarks.md` "
        "(part of `make bench`).",
        "",
        *table,
        "",
        *ratios,
        "",
        "cryptography's request parser is a Rust anchor that accepts only one CertID per "
        "request and leaves nonce checks to the caller; revocd's decoder walks the whole "
        "request, checks DER, hash sizes, limits and the nonce, and returns every CertID.",
    ]
    print("\n".join(ratios))
    if args.write:
        replace_section(args.write, "bench_core", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
