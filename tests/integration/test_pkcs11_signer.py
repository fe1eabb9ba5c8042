"""PKCS#11 signing against a real SoftHSM2 token: algorithms, openssl-verified answers,
batches, a full queue, a hung token and a removed token."""

import os
import random
import time

import pytest
import trio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

from responder.ocsp import CertStatus
from responder.signing import ResponderIdentity, SignerBusy, SignerError
from responder.signing import algorithms as algs
from responder.signing.pkcs11 import Pkcs11KeyRef, Pkcs11Signer
from responder.testing import pki

from ..conftest import openssl
from ..hsm import build_shim
from ..ocsp_helpers import answer_request, write


def ref(hsm, label, module=None):
    return Pkcs11KeyRef(
        module or hsm.module, key_label=label, token_label="revocd-test", pin_file=hsm.pin_file
    )


@pytest.fixture
def signer_for(softhsm):
    started = []

    def make(label, **kwargs):
        signer = Pkcs11Signer(ref(softhsm, label, kwargs.pop("module", None)), **kwargs).start()
        started.append(signer)
        return signer

    yield make
    for signer in started:
        signer.close()


def _verify(signer, data, signature):
    public = serialization.load_der_public_key(signer.public_key_info)
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(signature, data)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        h = hashes.SHA384() if public.curve.key_size == 384 else hashes.SHA256()
        public.verify(signature, data, ec.ECDSA(h))
    elif signer.signature_algorithm == algs.RSA_SHA256:
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        public.verify(
            signature,
            data,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )


@pytest.mark.parametrize(
    ("label", "kwargs", "alg"),
    [
        ("p256", {}, algs.ECDSA_SHA256),
        ("p384", {}, algs.ECDSA_SHA384),
        ("rsa", {}, algs.RSA_SHA256),
        ("rsa", {"rsa_padding": "pss"}, algs.rsa_pss("sha256")),
        ("ed", {}, algs.ED25519),
    ],
)
def test_signatures_verify(signer_for, label, kwargs, alg):
    signer = signer_for(label, **kwargs)
    assert signer.signature_algorithm == alg

    async def main():
        for _ in range(20):
            data = os.urandom(random.randrange(1, 300))
            _verify(signer, data, await signer.sign(data))

    trio.run(main)


def test_hsm_signed_answers_verify_with_openssl(signer_for, test_pki, tmp_path):
    signer = signer_for("p256")
    public = serialization.load_der_public_key(signer.public_key_info)
    cert = pki.certify_responder_key(test_pki.issuer, public)  # the key stays in the token
    identity = ResponderIdentity(signer, test_pki.issuer.cert, cert)
    req = tmp_path / "req.der"
    openssl(
        "ocsp",
        "-issuer",
        test_pki.path("issuer.pem"),
        "-cert",
        test_pki.path("good.pem"),
        "-reqout",
        req,
        "-no_nonce",
    )
    statuses = {test_pki.leaves["good"].cert.serial_number: CertStatus.GOOD}
    resp = write(tmp_path / "resp.der", answer_request(identity, req.read_bytes(), statuses))
    out = openssl(
        "ocsp",
        "-respin",
        resp,
        "-issuer",
        test_pki.path("issuer.pem"),
        "-cert",
        test_pki.path("good.pem"),
        "-CAfile",
        test_pki.path("root.pem"),
        "-no_nonce",
    )
    assert "Response verify OK" in out.stdout + out.stderr
    assert "good.pem: good" in out.stdout


def test_ten_thousand_signatures_in_batches(signer_for):
    # All 10,000 are queued at once: the last wait for the 9,999 before them, which on
    # a loaded two-core machine took longer than the default 2 s per signature (two
    # clean-clone runs failed so). What this test holds is that every one is signed in
    # batches; the timeout has tests of its own.
    signer = signer_for("p256", queue_size=20_000, timeout=60.0)
    results: list[tuple[bytes, bytes]] = []

    async def one(data):
        results.append((data, await signer.sign(data)))

    async def main():
        async with trio.open_nursery() as nursery:
            for i in range(10_000):
                nursery.start_soon(one, i.to_bytes(4, "big"))

    started = time.monotonic()
    trio.run(main)
    assert len(results) == 10_000
    for data, signature in random.sample(results, 200):
        _verify(signer, data, signature)
    assert time.monotonic() - started < 120


def test_full_queue_answers_busy(signer_for):
    signer = signer_for("rsa", queue_size=8, batch=1)
    outcomes = {"ok": 0, "busy": 0}

    async def one():
        try:
            await signer.sign(b"x")
            outcomes["ok"] += 1
        except SignerBusy:
            outcomes["busy"] += 1

    async def main():
        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(one)

    trio.run(main)
    assert outcomes["busy"] > 0 and outcomes["ok"] > 0


@pytest.fixture(scope="module")
def shim(tmp_path_factory, softhsm):
    d = tmp_path_factory.mktemp("shim")
    module = build_shim(d)
    os.environ["REVOCD_SHIM_TARGET"] = softhsm.module
    os.environ["REVOCD_SHIM_DIR"] = str(d)
    yield module, d
    for name in ("hang", "gone"):
        (d / name).unlink(missing_ok=True)


def test_hung_token_times_out_then_recovers(signer_for, shim):
    module, d = shim
    signer = signer_for("p256", module=str(module), timeout=0.5)
    trio.run(signer.sign, b"before")
    (d / "hang").touch()
    try:
        started = time.monotonic()
        with pytest.raises(SignerError, match="longer than"):
            trio.run(signer.sign, b"during")
        assert time.monotonic() - started < 3
    finally:
        (d / "hang").unlink()
    deadline = time.monotonic() + 10
    while True:
        try:
            _verify(signer, b"after", trio.run(signer.sign, b"after"))
            break
        except SignerError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_removed_token_fails_fast_then_recovers(signer_for, shim):
    module, d = shim
    signer = signer_for("p256", module=str(module), timeout=2)
    (d / "gone").touch()
    try:
        with pytest.raises(SignerError):
            trio.run(signer.sign, b"first")
        started = time.monotonic()
        with pytest.raises(SignerError, match="unavailable"):
            trio.run(signer.sign, b"second")
        assert time.monotonic() - started < 0.5  # fails fast while the token is gone
    finally:
        (d / "gone").unlink()
    deadline = time.monotonic() + 15
    while True:
        try:
            _verify(signer, b"back", trio.run(signer.sign, b"back"))
            break
        except SignerError:
            assert time.monotonic() < deadline, "the session was not reopened"
            time.sleep(0.2)


def test_keys_of_one_module_share_one_owner_thread(signer_for):
    """Two issuers' keys in one HSM: one thread calls the module, both sign concurrently."""
    import threading

    a, b = signer_for("p256"), signer_for("p384")
    owners = [t for t in threading.enumerate() if t.name.startswith("pkcs11:")]
    assert len(owners) == 1
    signed = []

    async def one(signer, data):
        signed.append((signer, data, await signer.sign(data)))

    async def main():
        async with trio.open_nursery() as nursery:
            for i in range(300):
                nursery.start_soon(one, a if i % 2 else b, i.to_bytes(2, "big"))

    trio.run(main)
    assert len(signed) == 300
    for signer, data, signature in signed[:40]:
        _verify(signer, data, signature)


def test_missing_key_is_a_clear_error(softhsm):
    with pytest.raises(SignerError, match="PKCS#11"):
        Pkcs11Signer(ref(softhsm, "no-such-key")).start()
