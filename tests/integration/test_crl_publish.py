"""Every pre-publish check fires when it should, and the old CRL stays published."""

import time

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crlgen.builder import CrlIssuer, Shard, build_crl
from crlgen.publish import Checks, DirectoryOrigin, PublishRefused, crl_number
from responder.ocsp.types import RevocationReason
from responder.signing import SoftwareSigner
from responder.store import CertRecord, Status
from responder.testing import pki

from ..conftest import openssl

NOW = int(time.time())


def record(serial):
    return CertRecord(
        serial,
        Status.REVOKED,
        NOW + 86400,
        2,
        NOW,
        0,
        revoked_at=NOW - 60,
        reason=RevocationReason.KEY_COMPROMISE,
    )


@pytest.fixture
def setup(test_pki, tmp_path):
    issuer = CrlIssuer(test_pki.issuer.cert, SoftwareSigner(test_pki.issuer.key))
    origin = DirectoryOrigin(tmp_path / "origin")
    key = test_pki.issuer.cert.public_key()

    def make(serials, number, this_update=NOW, next_update=NOW + 86400, signer_issuer=issuer):
        shard = Shard.from_records(record(s) for s in serials)
        return trio.run(build_crl, signer_issuer, shard, number, this_update, next_update)

    first = make([1, 2, 3], 100)
    origin.publish("alpha", "alpha.crl", first, key, Checks())
    return origin, key, make, first


def refused(origin, key, der, check, checks=None):
    with pytest.raises(PublishRefused) as info:
        origin.publish("alpha", "alpha.crl", der, key, checks or Checks())
    assert info.value.check == check
    return info.value


@pytest.mark.parametrize(
    ("case", "check"),
    [
        ("number backwards", "number"),
        ("number repeated", "number"),
        ("entry dropped early", "entry_dropped"),
        ("bad signature", "signature"),
        ("thisUpdate in the future", "this_update"),
        ("validity too long", "validity"),
    ],
)
def test_check_fires_and_old_crl_stays(setup, test_pki, case, check):
    origin, key, make, first = setup
    if case == "number backwards":
        der = make([1, 2, 3], 99)
    elif case == "number repeated":
        der = make([1, 2, 3, 4], 100)
    elif case == "entry dropped early":
        der = make([1, 3], 101)
    elif case == "bad signature":
        other = pki.make_intermediate("impostor", test_pki.root)
        # same issuer name, another key: the signature does not verify under the real key.
        # CrlIssuer itself refuses such a signer, so it is assembled by hand here.
        impostor = CrlIssuer.__new__(CrlIssuer)
        object.__setattr__(impostor, "certificate", test_pki.issuer.cert)
        object.__setattr__(impostor, "signer", SoftwareSigner(other.key))
        object.__setattr__(impostor, "name_der", test_pki.issuer.cert.subject.public_bytes())
        object.__setattr__(impostor, "aki", b"\x00" * 20)
        der = make([1, 2, 3], 101, signer_issuer=impostor)
    elif case == "thisUpdate in the future":
        der = make([1, 2, 3], 101, this_update=NOW + 3600, next_update=NOW + 7200)
    else:
        der = make([1, 2, 3], 101, next_update=NOW + 10 * 86400)
    refused(origin, key, der, check)
    assert origin.current("alpha.crl") == first  # the previous CRL is still published


def test_expired_entries_may_leave_after_retention(setup):
    origin, key, make, _ = setup
    der = make([1, 3], 101)
    origin.publish("alpha", "alpha.crl", der, key, Checks(may_drop=lambda serial: serial == 2))
    assert origin.current("alpha.crl") == der


def test_size_limits(setup):
    origin, key, make, _ = setup
    der = make([1, 2, 3, 4], 101)
    refused(origin, key, der, "size", Checks(max_bytes=100))
    origin.publish("alpha", "alpha.crl", der, key, Checks(warn_bytes=10))  # a warning only


def test_published_crl_verifies_with_openssl(setup, test_pki, tmp_path):
    origin, key, make, _ = setup
    der = make([1, 2, 3, 9], 101)
    path = origin.publish("alpha", "alpha.crl", der, key, Checks())
    pem = tmp_path / "c.pem"
    pem.write_bytes(
        x509.load_der_x509_crl(path.read_bytes()).public_bytes(serialization.Encoding.PEM)
    )
    out = openssl("crl", "-in", pem, "-noout", "-CAfile", test_pki.path("issuer.pem"))
    assert "verify OK" in out.stdout + out.stderr
    assert not list(path.parent.glob(".*.tmp"))


def test_crl_numbers_never_go_backwards():
    assert crl_number(NOW, None) == NOW * 1000
    assert crl_number(NOW, NOW * 1000 + 5) == NOW * 1000 + 6  # the clock stepped back
    assert crl_number(NOW + 1, NOW * 1000) == (NOW + 1) * 1000
    # a generator that lost all state still issues a larger number later
    assert crl_number(NOW + 60, None) > crl_number(NOW, None)
