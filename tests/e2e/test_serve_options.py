"""`revocd serve` options: nonce policy, CRL files, --workers, and refusing a bad responder."""

import datetime as dt
import hashlib

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from responder.testing import pki

from ..served import now_iso, start_served
from ..service_helpers import get, split_response, start

SERIAL = 0x0AB0CD


@pytest.fixture(scope="module")
def ignoring(tmp_path_factory, test_pki):
    """One worker, nonces ignored, a CRL file in the CRL directory."""
    s = start_served(
        tmp_path_factory.mktemp("ignore"),
        test_pki,
        workers=1,
        alpha_extra='nonce = "ignore"',
        args=("--workers", "1"),
    )
    assert (
        s.push(
            {
                "type": "issued",
                "issuer": "alpha",
                "serial": format(SERIAL, "x"),
                "not_after": now_iso(86400 * 30),
            }
        )[0]
        == 200
    )
    yield s
    assert s.proc.stop() == 0, s.proc.output


def test_nonce_ignored_by_policy(ignoring):
    """RFC 9919: a responder may leave the nonce out and answer from its caches."""
    status, der = ignoring.ocsp_post("alpha", SERIAL, nonce=b"n" * 16)
    assert status == "good"
    data = asn1_ocsp.OCSPResponse.load(der).basic_ocsp_response["tbs_response_data"]
    assert not data["response_extensions"].contents
    again = ignoring.ocsp_post("alpha", SERIAL, nonce=b"m" * 16)[1]
    assert again == der  # the same cached answer


def test_nonce_echoed_by_default(tmp_path, test_pki):
    s = start_served(tmp_path / "echo", test_pki, workers=1)
    try:
        assert (
            s.push(
                {
                    "type": "issued",
                    "issuer": "alpha",
                    "serial": format(SERIAL, "x"),
                    "not_after": now_iso(86400 * 30),
                }
            )[0]
            == 200
        )
        _, der = s.ocsp_post("alpha", SERIAL, nonce=b"q" * 32)
        ext = asn1_ocsp.OCSPResponse.load(der).basic_ocsp_response["tbs_response_data"][
            "response_extensions"
        ][0]
        assert ext["extn_id"].native == "nonce" and ext["extn_value"].parsed.native == b"q" * 32
    finally:
        assert s.proc.stop() == 0, s.proc.output


def test_crl_files_served_with_caching_headers(ignoring, test_pki):
    crl_dir = ignoring.dir / "state" / "crl"
    now = dt.datetime.now(dt.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(test_pki.issuer.cert.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .sign(test_pki.issuer.key, hashes.SHA256())
    )
    body = crl.public_bytes(serialization.Encoding.DER)
    (crl_dir / "alpha.crl").write_bytes(body)
    status, headers, got = split_response(get(ignoring.port, "/crl/alpha.crl"))
    assert status == 200 and got == body
    assert headers["content-type"] == "application/pkix-crl"
    assert headers["etag"] == '"' + hashlib.sha256(body).hexdigest() + '"'
    assert "max-age=" in headers["cache-control"] and headers["last-modified"].endswith("GMT")
    status, headers304, _ = split_response(
        get(ignoring.port, "/crl/alpha.crl", {"If-None-Match": headers["etag"]})
    )
    assert status == 304 and headers304["etag"] == headers["etag"]
    assert "max-age=" in headers304["cache-control"]
    assert "content-type" not in headers304 and "last-modified" not in headers304
    assert split_response(get(ignoring.port, "/crl/missing.crl"))[0] == 404
    assert split_response(get(ignoring.port, "/crl/../revocd.toml"))[0] == 404


def test_bad_responder_certificate_stops_start_up(tmp_path, test_pki):
    """A delegated responder certificate without id-kp-OCSPSigning never signs anything."""
    d = tmp_path / "bad"
    d.mkdir()
    test_pki.issuer.write(d / "issuer.pem")
    leaf = pki.make_leaf(test_pki.issuer, 77, "not-a-responder.test")
    leaf.write(d / "resp.pem", d / "resp.key")
    (d / "revocd.toml").write_text(
        '[issuers.alpha]\ncertificate = "issuer.pem"\nresponder_certificate = "resp.pem"\n'
        'responder_key = "resp.key"\n'
    )
    proc = start("serve", "-c", str(d / "revocd.toml"))
    assert proc.process.wait(60) == 2
    proc.wait_for("issuers.alpha.responder_certificate: delegated responder certificate lacks")


def test_unready_when_responder_certificate_ends_before_next_update(tmp_path, test_pki):
    short = pki.make_responder(test_pki.issuer, days=2)
    s = start_served(tmp_path / "short", test_pki, workers=1, responder=short)
    try:
        status, body, _ = s.control("GET", "/readyz", token=None)
        assert status == 503 and body["ready"] is False
        assert body["checks"]["answers:alpha"] == "responder certificate ends before nextUpdate"
        assert body["checks"]["answers:beta"] == "ok"
        # and the responder refuses to sign past its certificate rather than lie (for a
        # certificate valid for 30 days: the answer's nextUpdate is the schedule's 96 h,
        # not capped at its notAfter as a certificate ending within the 2 days would be)
        event = {
            "type": "issued",
            "issuer": "alpha",
            "serial": "77",
            "not_after": now_iso(30 * 86400),
        }
        assert s.push(event)[0] == 200
        assert s.ocsp_post("alpha", 0x77)[0] == "internal_error"
    finally:
        assert s.proc.stop() == 0, s.proc.output


def test_expiring_responder_certificate_is_reported(tmp_path, test_pki):
    short = pki.make_responder(test_pki.issuer, days=5)
    s = start_served(tmp_path / "expiring", test_pki, workers=1, responder=short)
    try:
        s.proc.wait_for("responder certificate expires in")
        _, body, _ = s.control("GET", "/metrics", token=None)
        line = next(
            x
            for x in body["raw"].splitlines()
            if x.startswith('revocd_responder_cert_expiry_seconds{issuer="alpha"}')
        )
        assert 4 * 86400 < float(line.split()[-1]) <= 5 * 86400
    finally:
        assert s.proc.stop() == 0, s.proc.output


def test_no_presign_and_no_crl_leave_that_work_to_other_processes(tmp_path, test_pki):
    """`serve --no-presign --no-crl` (the data plane role in deploy/kubernetes): answers
    are signed live on a miss, nothing is pre-signed and no CRL is written, although the
    issuer has a [crl] table."""
    import time

    d = tmp_path / "dp"
    d.mkdir()
    (d / "alpha.key").write_bytes(test_pki.issuer.key_pem)
    s = start_served(
        d,
        test_pki,
        workers=1,
        alpha_extra='[issuers.alpha.crl]\nkey = "alpha.key"\nurl = "http://crl.test/alpha.crl"\n',
        args=("--no-presign", "--no-crl"),
    )
    try:
        assert (
            s.push(
                {"type": "issued", "issuer": "alpha", "serial": "d0d0", "not_after": now_iso(9e6)}
            )[0]
            == 200
        )
        status, _ = s.ocsp_post("alpha", 0xD0D0)
        assert status == "good"  # signed live
        time.sleep(1.5)
        assert not list((d / "state" / "crl").glob("*.crl"))
        _, body, _ = s.control("GET", "/metrics", token=None)
        assert "revocd_presigned_total{" not in body["raw"]
        assert 'revocd_live_signatures_total{issuer="alpha"} 1.0' in body["raw"]
    finally:
        assert s.proc.stop() == 0, s.proc.output[-3000:]
