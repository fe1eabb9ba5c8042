"""`revocd demo` answers real openssl clients over POST and GET (RFC 6960, RFC 9919, RFC 9654)."""

import base64
import hashlib
import subprocess

import pytest
from asn1crypto import ocsp as asn1_ocsp

from ..conftest import openssl, require_tool
from ..service_helpers import get, split_response

EXPECT = {"good": "good", "revoked": "revoked", "unknown": "unknown"}


@pytest.mark.parametrize("name", ["good", "revoked", "unknown"])
@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no_nonce"])
@pytest.mark.parametrize("digest", ["-sha1", "-sha256"])
def test_post(demo, name, nonce, digest):
    args = [
        "ocsp",
        "-url",
        demo.url + "/",
        "-issuer",
        demo.dir / "issuer.pem",
        digest,
        "-cert",
        demo.cert(name),
        "-CAfile",
        demo.dir / "root.pem",
    ]
    if not nonce:
        args.append("-no_nonce")
    out = openssl(*args)
    assert "Response verify OK" in out.stdout + out.stderr
    assert f"{name}.pem: {EXPECT[name]}" in out.stdout
    assert "WARNING" not in out.stdout + out.stderr  # a nonce asked for is echoed
    if name == "revoked":
        assert "Reason: keyCompromise" in out.stdout


@pytest.mark.parametrize("name", ["good", "revoked", "unknown"])
@pytest.mark.parametrize("digest", ["-sha1", "-sha256"])
def test_get_with_curl(demo, tmp_path, name, digest):
    req = tmp_path / "req.der"
    openssl(
        "ocsp",
        "-issuer",
        demo.dir / "issuer.pem",
        digest,
        "-cert",
        demo.cert(name),
        "-no_nonce",
        "-reqout",
        req,
    )
    b64 = base64.b64encode(req.read_bytes()).decode()
    resp = tmp_path / "resp.der"
    curl = subprocess.run(
        [require_tool("curl"), "-sS", "-o", str(resp), "-w", "%{http_code}", f"{demo.url}/{b64}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert curl.stdout == "200", curl.stderr
    out = openssl(
        "ocsp",
        "-respin",
        resp,
        "-issuer",
        demo.dir / "issuer.pem",
        digest,
        "-cert",
        demo.cert(name),
        "-CAfile",
        demo.dir / "root.pem",
        "-no_nonce",
    )
    assert "Response verify OK" in out.stdout + out.stderr
    assert f"{name}.pem: {EXPECT[name]}" in out.stdout


def test_rfc9919_headers_and_revalidation(demo, tmp_path):
    req = tmp_path / "req.der"
    openssl(
        "ocsp",
        "-issuer",
        demo.dir / "issuer.pem",
        "-cert",
        demo.cert("good"),
        "-no_nonce",
        "-reqout",
        req,
    )
    path = "/" + base64.b64encode(req.read_bytes()).decode()
    status, headers, body = split_response(get(demo.port, path))
    assert status == 200
    assert headers["content-type"] == "application/ocsp-response"
    basic = asn1_ocsp.OCSPResponse.load(body).basic_ocsp_response
    single = basic["tbs_response_data"]["responses"][0]
    this_update, next_update = single["this_update"].native, single["next_update"].native
    assert headers["last-modified"] == this_update.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert headers["expires"] == next_update.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert headers["etag"] == '"' + hashlib.sha256(body).hexdigest() + '"'
    cache_control = headers["cache-control"]
    assert cache_control.endswith("public, no-transform, must-revalidate")
    max_age = int(cache_control.split("max-age=")[1].split(",")[0])
    validity = (next_update - this_update).total_seconds()
    assert 0 < max_age <= validity - 8 * 3600  # ends before the planned re-sign
    assert headers["date"].endswith("GMT")
    # no nonce in a pre-signed answer (RFC 9919)
    assert not basic["tbs_response_data"]["response_extensions"].contents

    status, headers304, body304 = split_response(
        get(demo.port, path, {"If-None-Match": headers["etag"]})
    )
    assert status == 304 and body304 == b"" and headers304["etag"] == headers["etag"]
    # RFC 9110 15.4.5: the validator, Expires and Cache-Control again, and no other
    # representation metadata (at 3079c4f the 304 also sent Content-Type).
    assert headers304["expires"] == headers["expires"]
    assert headers304["cache-control"].startswith("max-age=")
    assert "content-type" not in headers304 and "last-modified" not in headers304
    assert "content-length" not in headers304
    status, _, _ = split_response(
        get(demo.port, path, {"If-Modified-Since": headers["last-modified"]})
    )
    assert status == 304
    status, _, _ = split_response(get(demo.port, path, {"If-None-Match": '"other"'}))
    assert status == 200


def test_unknown_issuer_is_unauthorized(demo, tmp_path, test_pki):
    req = tmp_path / "req.der"
    openssl(
        "ocsp",
        "-issuer",
        test_pki.path("issuer.pem"),
        "-cert",
        test_pki.path("good.pem"),
        "-no_nonce",
        "-reqout",
        req,
    )
    status, headers, body = split_response(
        get(demo.port, "/" + base64.b64encode(req.read_bytes()).decode())
    )
    assert status == 200
    assert asn1_ocsp.OCSPResponse.load(body)["response_status"].native == "unauthorized"
    assert headers["cache-control"] == "max-age=0, no-cache"


def test_malformed_get_is_malformed_request(demo):
    status, headers, body = split_response(get(demo.port, "/MEIwQDA%2B!!!"))
    assert status == 200  # OCSP errors travel as OCSP responses
    assert asn1_ocsp.OCSPResponse.load(body)["response_status"].native == "malformed_request"
    assert headers["cache-control"] == "max-age=0, no-cache"


def test_demo_publishes_a_crl_openssl_accepts(demo, tmp_path):
    """The CRL DP URL in the demo certificates answers with a CRL signed by the issuer."""
    status, headers, body = split_response(get(demo.port, "/crl/demo.crl"))
    assert status == 200 and headers["content-type"] == "application/pkix-crl"
    der = tmp_path / "demo.crl"
    der.write_bytes(body)
    pem = tmp_path / "demo.crl.pem"
    openssl("crl", "-inform", "DER", "-in", der, "-out", pem)
    out = openssl("crl", "-in", pem, "-noout", "-CAfile", demo.dir / "issuer.pem")
    assert "verify OK" in out.stdout + out.stderr
    text = openssl("crl", "-in", pem, "-noout", "-text").stdout
    assert "Version 2" in text and "X509v3 CRL Number" in text
    assert "X509v3 Authority Key Identifier" in text
    chain = [
        "-CAfile",
        demo.dir / "root.pem",
        "-untrusted",
        demo.dir / "issuer.pem",
        "-crl_check",
        "-CRLfile",
        pem,
    ]
    revoked = openssl("verify", *chain, demo.cert("revoked"), check=False)
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr
    good = openssl("verify", *chain, demo.cert("good"))
    assert good.stdout.strip().endswith("OK")


def test_sigterm_stops_everything(tmp_path):
    """systemd and container runtimes stop services with SIGTERM: the embedded store goes too."""
    import signal

    from ..service_helpers import start_demo

    d = start_demo(tmp_path / "term", certs=10)
    port_file = d.dir / "state" / "valkey" / "port"
    assert port_file.exists()
    d.proc.process.send_signal(signal.SIGTERM)
    assert d.proc.process.wait(30) == 0, d.proc.output
    assert not port_file.exists()  # the embedded valkey-server was stopped, not orphaned
