"""A responder identity refuses what a client would reject (RFC 6960 4.2.2.2, BR 4.9.9)."""

import datetime as dt
import time

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from responder.ocsp import CertStatus, IssuerHashes, SingleAnswer
from responder.signing import (
    ResponderConfigError,
    ResponderIdentity,
    SoftwareSigner,
    ValidityExceedsCertificate,
)
from responder.testing import pki


def _responder_without(issuer: pki.Issued, drop: str) -> pki.Issued:
    key = pki.new_key()
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=bad responder"))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
    )
    if drop != "eku":
        usage = (
            [ExtendedKeyUsageOID.SERVER_AUTH]
            if drop == "ocsp-eku"
            else [ExtendedKeyUsageOID.OCSP_SIGNING]
        )
        b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if drop != "nocheck":
        b = b.add_extension(x509.OCSPNoCheck(), critical=False)
    return pki.Issued(b.sign(issuer.key, hashes.SHA256()), key)


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("eku", "no extendedKeyUsage"),
        ("ocsp-eku", "lacks id-kp-OCSPSigning"),
        ("nocheck", "ocsp-nocheck"),
    ],
)
def test_delegated_responder_requirements(test_pki, drop, message):
    bad = _responder_without(test_pki.issuer, drop)
    with pytest.raises(ResponderConfigError, match=message):
        ResponderIdentity(SoftwareSigner(bad.key), test_pki.issuer.cert, bad.cert)


def test_responder_from_another_issuer_rejected(test_pki):
    other = pki.make_intermediate("other issuer", test_pki.root)
    foreign = pki.make_responder(other)
    with pytest.raises(ResponderConfigError, match="not issued by the issuer"):
        ResponderIdentity(SoftwareSigner(foreign.key), test_pki.issuer.cert, foreign.cert)


def test_signer_key_must_match_certificate(test_pki):
    with pytest.raises(ResponderConfigError, match="does not match the delegated responder"):
        ResponderIdentity(
            SoftwareSigner(pki.new_key()), test_pki.issuer.cert, test_pki.responder.cert
        )
    with pytest.raises(ResponderConfigError, match="does not match the issuer"):
        ResponderIdentity(SoftwareSigner(pki.new_key()), test_pki.issuer.cert)


def test_next_update_past_responder_not_after_refused(test_pki):
    short = pki.make_responder(test_pki.issuer, days=1)
    identity = ResponderIdentity(SoftwareSigner(short.key), test_pki.issuer.cert, short.cert)
    cid = IssuerHashes.from_certificate(test_pki.issuer.cert).cert_id(0, 5)
    now = int(time.time())
    ok = SingleAnswer(cid, CertStatus.GOOD, now, identity.not_after)
    assert trio.run(identity.sign, [ok], now)
    too_long = SingleAnswer(cid, CertStatus.GOOD, now, now + 2 * 86400)
    with pytest.raises(ValidityExceedsCertificate):
        trio.run(identity.sign, [too_long], now)


def test_issuer_hashes_match_openssl_cert_id(test_pki, tmp_path):
    """CertIDs built for pre-signed answers equal the ones openssl puts in requests."""
    from responder.ocsp import HashAlgorithm, decode_request

    from ..conftest import openssl

    hashes_ = IssuerHashes.from_certificate(test_pki.issuer.cert)
    for alg, flag in [
        (HashAlgorithm.SHA1, "-sha1"),
        (HashAlgorithm.SHA256, "-sha256"),
        (HashAlgorithm.SHA384, "-sha384"),
        (HashAlgorithm.SHA512, "-sha512"),
    ]:
        req = tmp_path / "r.der"
        openssl(
            "ocsp",
            "-issuer",
            test_pki.path("issuer.pem"),
            flag,
            "-cert",
            test_pki.path("extra.pem"),
            "-reqout",
            req,
            "-no_nonce",
        )
        (cid,) = decode_request(req.read_bytes()).cert_ids
        assert hashes_.matches(cid.hash_algorithm, cid.issuer_name_hash, cid.issuer_key_hash)
        assert hashes_.cert_id(alg, cid.serial) == cid.der


def test_single_answer_invariants():
    with pytest.raises(ValueError, match="needs revoked_at"):
        SingleAnswer(b"", CertStatus.REVOKED, 0, 1)
    with pytest.raises(ValueError, match="only a revoked answer"):
        SingleAnswer(b"", CertStatus.GOOD, 0, 1, revoked_at=0)
    with pytest.raises(ValueError, match="nextUpdate before thisUpdate"):
        SingleAnswer(b"", CertStatus.GOOD, 10, 1)
