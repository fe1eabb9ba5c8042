"""openssl as the OCSP client verifies what the protocol core produces (RFC 6960, RFC 9654)."""

import pytest
from asn1crypto import ocsp as asn1_ocsp

from responder.ocsp import CertStatus, RevocationReason
from responder.signing import ResponderIdentity, SoftwareSigner
from responder.testing import pki

from ..conftest import PkiFiles, openssl
from ..ocsp_helpers import answer_request, write

STATUS_OF = {"good": CertStatus.GOOD, "revoked": CertStatus.REVOKED, "unknown": CertStatus.UNKNOWN}


def _statuses(p: PkiFiles) -> dict[int, CertStatus]:
    return {
        p.leaves["good"].cert.serial_number: CertStatus.GOOD,
        p.leaves["revoked"].cert.serial_number: CertStatus.REVOKED,
        p.leaves["extra"].cert.serial_number: CertStatus.GOOD,
    }


def _identity(p: PkiFiles, delegated: bool) -> ResponderIdentity:
    if delegated:
        return ResponderIdentity(SoftwareSigner(p.responder.key), p.issuer.cert, p.responder.cert)
    return ResponderIdentity(SoftwareSigner(p.issuer.key), p.issuer.cert)


@pytest.mark.parametrize("name", ["good", "revoked", "unknown"])
@pytest.mark.parametrize("delegated", [True, False], ids=["delegated", "issuer-key"])
@pytest.mark.parametrize("digest", ["-sha1", "-sha256"])
def test_openssl_verifies_status(test_pki: PkiFiles, tmp_path, name, delegated, digest):
    req = tmp_path / "req.der"
    openssl(
        "ocsp",
        "-issuer",
        test_pki.path("issuer.pem"),
        digest,
        "-cert",
        test_pki.path(f"{name}.pem"),
        "-reqout",
        req,
        "-no_nonce",
    )
    resp = write(
        tmp_path / "resp.der",
        answer_request(_identity(test_pki, delegated), req.read_bytes(), _statuses(test_pki)),
    )
    out = openssl(
        "ocsp",
        "-respin",
        resp,
        "-issuer",
        test_pki.path("issuer.pem"),
        digest,
        "-cert",
        test_pki.path(f"{name}.pem"),
        "-CAfile",
        test_pki.path("root.pem"),
        "-no_nonce",
    )
    assert "Response verify OK" in out.stderr + out.stdout
    assert f"{name}.pem: {name}" in out.stdout
    if name == "revoked":
        assert "Reason: keyCompromise" in out.stdout


@pytest.mark.parametrize("delegated", [True, False], ids=["delegated", "issuer-key"])
def test_nonce_is_echoed_and_checked(test_pki: PkiFiles, tmp_path, delegated):
    """RFC 9654: openssl compares the request nonce with the response nonce."""
    req = tmp_path / "req.der"
    openssl(
        "ocsp",
        "-issuer",
        test_pki.path("issuer.pem"),
        "-cert",
        test_pki.path("good.pem"),
        "-reqout",
        req,
    )
    resp = write(
        tmp_path / "resp.der",
        answer_request(_identity(test_pki, delegated), req.read_bytes(), _statuses(test_pki)),
    )
    out = openssl(
        "ocsp",
        "-reqin",
        req,
        "-respin",
        resp,
        "-CAfile",
        test_pki.path("root.pem"),
        "-verify_other",
        test_pki.path("issuer.pem"),
        "-resp_text",
    )
    assert "Response verify OK" in out.stderr + out.stdout
    assert "Cert Status: good" in out.stdout
    assert "OCSP Nonce" in out.stdout

    # The same check fails when the nonce is not echoed: proof that it is really compared.
    bad = write(
        tmp_path / "bad.der",
        answer_request(
            _identity(test_pki, delegated), req.read_bytes(), _statuses(test_pki), echo_nonce=False
        ),
    )
    out = openssl(
        "ocsp",
        "-reqin",
        req,
        "-respin",
        bad,
        "-CAfile",
        test_pki.path("root.pem"),
        "-verify_other",
        test_pki.path("issuer.pem"),
        check=False,
    )
    assert "WARNING: no nonce in response" in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("key_type", "padding"),
    [
        ("ec-p384", "pkcs1v15"),
        ("rsa-2048", "pkcs1v15"),
        ("rsa-2048", "pss"),
        ("ed25519", "pkcs1v15"),
    ],
)
def test_signer_algorithms_verify(test_pki: PkiFiles, tmp_path, key_type, padding):
    responder = pki.make_responder(test_pki.issuer, key_type=key_type)
    identity = ResponderIdentity(
        SoftwareSigner(responder.key, rsa_padding=padding), test_pki.issuer.cert, responder.cert
    )
    req = tmp_path / "req.der"
    openssl(
        "ocsp",
        "-issuer",
        test_pki.path("issuer.pem"),
        "-cert",
        test_pki.path("revoked.pem"),
        "-reqout",
        req,
        "-no_nonce",
    )
    resp = write(
        tmp_path / "resp.der", answer_request(identity, req.read_bytes(), _statuses(test_pki))
    )
    out = openssl(
        "ocsp",
        "-respin",
        resp,
        "-issuer",
        test_pki.path("issuer.pem"),
        "-cert",
        test_pki.path("revoked.pem"),
        "-CAfile",
        test_pki.path("root.pem"),
        "-no_nonce",
    )
    assert "Response verify OK" in out.stderr + out.stdout
    assert "revoked.pem: revoked" in out.stdout


def test_several_cert_ids_in_one_response(test_pki: PkiFiles, tmp_path):
    req = tmp_path / "req.der"
    names = ["good", "revoked", "unknown", "extra"]
    args = []
    for n in names:
        args += ["-cert", test_pki.path(f"{n}.pem")]
    openssl("ocsp", "-issuer", test_pki.path("issuer.pem"), *args, "-reqout", req, "-no_nonce")
    resp = write(
        tmp_path / "resp.der",
        answer_request(_identity(test_pki, True), req.read_bytes(), _statuses(test_pki)),
    )
    out = openssl(
        "ocsp",
        "-respin",
        resp,
        "-issuer",
        test_pki.path("issuer.pem"),
        *args,
        "-CAfile",
        test_pki.path("root.pem"),
        "-no_nonce",
    )
    assert "Response verify OK" in out.stderr + out.stdout
    for n, expect in [
        ("good", "good"),
        ("revoked", "revoked"),
        ("unknown", "unknown"),
        ("extra", "good"),
    ]:
        assert f"{n}.pem: {expect}" in out.stdout


def test_unspecified_reason_is_omitted(test_pki: PkiFiles, tmp_path):
    """RFC 5280 section 5.3.1 / BR 7.2.2: reasonCode unspecified is left out."""
    req = tmp_path / "req.der"
    openssl(
        "ocsp",
        "-issuer",
        test_pki.path("issuer.pem"),
        "-cert",
        test_pki.path("revoked.pem"),
        "-reqout",
        req,
        "-no_nonce",
    )
    der = answer_request(
        _identity(test_pki, True),
        req.read_bytes(),
        _statuses(test_pki),
        reason=RevocationReason.UNSPECIFIED,
    )
    single = asn1_ocsp.OCSPResponse.load(der).basic_ocsp_response["tbs_response_data"]["responses"][
        0
    ]
    revoked = single["cert_status"].chosen
    assert revoked["revocation_time"].native is not None
    assert not revoked["revocation_reason"].contents  # field absent, not encoded
    out = openssl(
        "ocsp",
        "-respin",
        write(tmp_path / "resp.der", der),
        "-issuer",
        test_pki.path("issuer.pem"),
        "-cert",
        test_pki.path("revoked.pem"),
        "-CAfile",
        test_pki.path("root.pem"),
        "-no_nonce",
    )
    assert "revoked.pem: revoked" in out.stdout
    assert "Reason:" not in out.stdout


def test_signed_request_is_accepted(test_pki: PkiFiles, tmp_path):
    """RFC 6960 section 4.1.2: optional request signatures are parsed and ignored."""
    req = tmp_path / "req.der"
    leaf = test_pki.leaves["good"]
    openssl(
        "ocsp",
        "-issuer",
        test_pki.path("issuer.pem"),
        "-cert",
        test_pki.path("good.pem"),
        "-signer",
        test_pki.path("good.pem"),
        "-signkey",
        test_pki.path("good.key"),
        "-reqout",
        req,
    )
    from responder.ocsp import decode_request

    request = decode_request(req.read_bytes())
    assert request.signed
    assert [c.serial for c in request.cert_ids] == [leaf.cert.serial_number]
    assert request.nonce is not None
