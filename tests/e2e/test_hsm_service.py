"""The responder with its key in a PKCS#11 token: the demo on SoftHSM2, and a token that
stops answering or disappears while serving (tryLater, never a hang; recovery after)."""

import os
import time

import pytest
from cryptography.hazmat.primitives import serialization

from responder.signing.pkcs11 import Pkcs11KeyRef, Pkcs11Signer
from responder.store.embedded import free_port
from responder.testing import pki

from ..conftest import openssl
from ..hsm import build_shim
from ..served import Served, now_iso
from ..service_helpers import start, start_demo


def test_demo_with_hsm_key_answers_openssl(tmp_path):
    demo = start_demo(tmp_path / "hsm-demo", certs=20, extra=("--hsm",))
    try:
        assert (demo.dir / "softhsm" / "softhsm2.conf").exists()
        for name in ("good", "revoked", "unknown"):
            out = openssl(
                "ocsp",
                "-url",
                demo.url + "/",
                "-issuer",
                demo.dir / "issuer.pem",
                "-cert",
                demo.cert(name),
                "-CAfile",
                demo.dir / "root.pem",
                "-resp_text",
            )
            assert "Response verify OK" in out.stdout + out.stderr
            assert f"{name}.pem: {name}" in out.stdout
            assert "CN=revocd demo HSM responder" in out.stdout
    finally:
        assert demo.proc.stop() == 0, demo.proc.output


@pytest.fixture
def hsm_served(tmp_path, softhsm, test_pki):
    """revocd serve whose responder key sits behind the misbehaving shim module."""
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    module = build_shim(shim_dir)
    label = "svc-" + os.urandom(4).hex()
    softhsm.generate(label, "ec-p256")
    signer = Pkcs11Signer(
        Pkcs11KeyRef(
            softhsm.module, key_label=label, token_label="revocd-test", pin_file=softhsm.pin_file
        )
    ).start()
    try:
        public = serialization.load_der_public_key(signer.public_key_info)
    finally:
        signer.close()
    d = tmp_path / "svc"
    d.mkdir()
    test_pki.issuer.write(d / "issuer.pem")
    (d / "responder.pem").write_bytes(
        pki.certify_responder_key(test_pki.issuer, public).public_bytes(serialization.Encoding.PEM)
    )
    port, control = free_port(), free_port()
    (d / "revocd.toml").write_text(f"""
state_dir = "state"
[server]
port = {port}
[control]
port = {control}
[issuers.alpha]
certificate = "issuer.pem"
responder_certificate = "responder.pem"
[issuers.alpha.hsm]
module = "{module}"
token_label = "revocd-test"
key_label = "{label}"
pin_file = "{softhsm.pin_file}"
timeout_ms = 500
[tokens.ra]
sha256 = "{__import__("hashlib").sha256(b"ra-token").hexdigest()}"
issuers = ["*"]
""")
    os.environ["REVOCD_SHIM_TARGET"] = softhsm.module
    os.environ["REVOCD_SHIM_DIR"] = str(shim_dir)
    proc = start("serve", "-c", str(d / "revocd.toml"))
    proc.wait_for("revocd ready")
    from responder.ocsp import IssuerHashes

    served = Served(
        d, port, control, proc, {"alpha": IssuerHashes.from_certificate(test_pki.issuer.cert)}
    )
    yield served, shim_dir
    for name in ("hang", "gone"):
        (shim_dir / name).unlink(missing_ok=True)
    assert proc.stop() == 0, proc.output


def _push(served, serial):
    status, body, _ = served.control(
        "POST",
        "/v1/events",
        {
            "events": [
                {
                    "type": "issued",
                    "issuer": "alpha",
                    "serial": format(serial, "x"),
                    "not_after": now_iso(86400 * 30),
                }
            ]
        },
        token="ra-token",
    )
    assert status == 200, body


@pytest.mark.parametrize("failure", ["hang", "gone"])
def test_token_failure_gives_try_later_then_recovers(hsm_served, failure):
    served, shim_dir = hsm_served
    _push(served, 0x51)
    assert served.ocsp_post("alpha", 0x51, nonce=b"a" * 16)[0] == "good"
    (shim_dir / failure).touch()
    try:
        for i in range(3):  # nonces force a live signature every time
            started = time.monotonic()
            assert served.ocsp_post("alpha", 0x51, nonce=bytes([i]) * 16)[0] == "try_later"
            assert time.monotonic() - started < 3
        status, body, _ = served.control("GET", "/readyz", token=None)
        assert status == 503 and body["checks"]["signer:alpha"].startswith("failed")
    finally:
        (shim_dir / failure).unlink()
    deadline = time.monotonic() + 20
    while served.ocsp_post("alpha", 0x51, nonce=b"z" * 16)[0] != "good":
        assert time.monotonic() < deadline, "signing did not recover"
        time.sleep(0.2)
    assert served.control("GET", "/readyz", token=None)[0] == 200
