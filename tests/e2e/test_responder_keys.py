"""`revocd responder-key`: generate, CSR, install, check, and the live switch."""

import datetime as dt
import json
import subprocess
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from responder.audit.log import verify

from ..served import start_served


def revocd(*args):
    return subprocess.run(
        [sys.executable, "-m", "responder", *args], capture_output=True, text=True, timeout=120
    )


def ca_signs(csr_path, test_pki, days=90, ocsp_eku=True):
    """What the CA does with the request: a delegated OCSP responder certificate."""
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.is_signature_valid
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_eku else ExtendedKeyUsageOID.SERVER_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(test_pki.issuer.cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .sign(test_pki.issuer.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_file_key_rotation_switches_a_running_responder(tmp_path, test_pki):
    s = start_served(tmp_path / "rot", test_pki, workers=1)
    try:
        cfg = str(s.dir / "revocd.toml")
        assert revocd("responder-key", "check", "-c", cfg).returncode == 0
        new_key = s.dir / "next.key"
        out = revocd(
            "responder-key", "generate", "-c", cfg, "--issuer", "alpha", "--out", str(new_key)
        )
        assert out.returncode == 0, out.stderr
        assert oct(new_key.stat().st_mode & 0o777) == "0o600"
        csr = s.dir / "next.csr"
        out = revocd(
            "responder-key",
            "csr",
            "-c",
            cfg,
            "--issuer",
            "alpha",
            "--key",
            str(new_key),
            "--out",
            str(csr),
        )
        assert out.returncode == 0, out.stderr
        signed = s.dir / "next.pem"

        # A certificate without id-kp-OCSPSigning is refused, and nothing changes.
        signed.write_bytes(ca_signs(csr, test_pki, ocsp_eku=False))
        new_key.replace(s.dir / "alpha-responder.key")
        out = revocd("responder-key", "install", "-c", cfg, "--issuer", "alpha", str(signed))
        assert out.returncode == 2 and "OCSPSigning" in out.stderr

        signed.write_bytes(ca_signs(csr, test_pki))
        out = revocd("responder-key", "install", "-c", cfg, "--issuer", "alpha", str(signed))
        assert out.returncode == 0, out.stderr
        new_cert = x509.load_pem_x509_certificate(signed.read_bytes())
        new_id = x509.SubjectKeyIdentifier.from_public_key(new_cert.public_key()).digest
        s.push(
            {
                "type": "issued",
                "issuer": "alpha",
                "serial": "abc",
                "not_after": "2030-01-01T00:00:00Z",
            }
        )
        deadline = time.monotonic() + 30
        while True:  # nonce'd requests are signed live, with whatever identity is current
            from asn1crypto import ocsp as asn1_ocsp

            _, der = s.ocsp_post("alpha", 0xABC, nonce=b"rotation-check-1")
            rid = (
                asn1_ocsp.OCSPResponse.load(der)
                .basic_ocsp_response["tbs_response_data"]["responder_id"]
                .chosen.native
            )
            if rid == new_id:
                break
            assert time.monotonic() < deadline, "the responder did not switch keys"
            time.sleep(0.5)
        s.proc.wait_for("now signing with responder certificate serial")
        # The command line and the running service append to one audit chain.
        audit_log = s.dir / "state" / "audit.log"
        deadline = time.monotonic() + 15
        while '"key.responder_changed"' not in audit_log.read_text():
            assert time.monotonic() < deadline, "the key change was not audited"
            time.sleep(0.2)
        kinds = {}
        for line in audit_log.read_text().splitlines():
            record = json.loads(line)
            kinds.setdefault(record["kind"], record)
        assert kinds["key.generated"]["path"] == str(new_key.resolve())
        assert "uid" in kinds["key.generated"]["operator"]
        installed = kinds["key.responder_installed"]
        assert installed["cert_serial"] == format(new_cert.serial_number, "x")
        assert kinds["key.responder_changed"]["cert_sha256"] == installed["cert_sha256"]
        assert verify([audit_log]).ok
    finally:
        assert s.proc.stop() == 0, s.proc.output


def test_check_flags_certificates_close_to_expiry(tmp_path, test_pki):
    from responder.testing import pki

    short = pki.make_responder(test_pki.issuer, days=10)
    s = start_served(tmp_path / "chk", test_pki, workers=1, responder=short)
    try:
        out = revocd("responder-key", "check", "-c", str(s.dir / "revocd.toml"))
        assert out.returncode == 1
        assert "alpha: responder certificate" in out.stdout and "ROTATE" in out.stdout
    finally:
        assert s.proc.stop() == 0, s.proc.output


def test_hsm_key_generate_and_csr(tmp_path, softhsm, test_pki):
    d = tmp_path / "hsmkey"
    d.mkdir()
    test_pki.issuer.write(d / "issuer.pem")
    label = f"rot-{int(time.time() * 1000)}"
    (d / "revocd.toml").write_text(f"""
[issuers.alpha]
certificate = "issuer.pem"
[issuers.alpha.hsm]
module = "{softhsm.module}"
token_label = "revocd-test"
key_label = "{label}"
pin_file = "{softhsm.pin_file}"
""")
    cfg = str(d / "revocd.toml")
    out = revocd("responder-key", "generate", "-c", cfg, "--issuer", "alpha")
    assert out.returncode == 0, out.stderr
    again = revocd("responder-key", "generate", "-c", cfg, "--issuer", "alpha")
    assert again.returncode == 2 and "exists" in again.stderr
    out = revocd(
        "responder-key", "csr", "-c", cfg, "--issuer", "alpha", "--out", str(d / "req.csr")
    )
    assert out.returncode == 0, out.stderr
    csr = x509.load_pem_x509_csr((d / "req.csr").read_bytes())
    assert csr.is_signature_valid  # signed inside the token
