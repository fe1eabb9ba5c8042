"""crlgen/publish.py reads a published CRL's number and serials by walking its DER
headers (no parse that holds the GIL for the whole list). Checked against
cryptography's parser on generated CRLs, and on garbage: None or ValueError only."""

import contextlib
import time

import trio
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from crlgen.builder import CrlIssuer, Shard, build_crl
from crlgen.publish import crl_number_of, crl_serials_of
from responder.ocsp.types import RevocationReason
from responder.signing import SoftwareSigner
from responder.store import CertRecord, Status
from responder.testing import pki

_ISSUER: list[CrlIssuer] = []
NOW = int(time.time())


def issuer() -> CrlIssuer:
    if not _ISSUER:
        made = pki.make_intermediate("walk issuer", pki.make_root("walk root"))
        _ISSUER.append(CrlIssuer(made.cert, SoftwareSigner(made.key)))
    return _ISSUER[0]


entry = st.builds(
    lambda serial, reason, invalidity: CertRecord(
        serial,
        Status.REVOKED,
        NOW + 86400,
        2,
        NOW,
        0,
        revoked_at=NOW - 60,
        reason=reason,
        invalidity_date=invalidity,
    ),
    st.integers(1, (1 << 159) - 1),
    st.none() | st.sampled_from([RevocationReason.KEY_COMPROMISE, RevocationReason.SUPERSEDED]),
    st.none() | st.just(NOW - 3600),
)


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(entry, max_size=40, unique_by=lambda r: r.serial),
    number=st.integers(0, (1 << 159) - 1),
    idp=st.none() | st.just("http://crl.example/1.crl"),
)
def test_the_walk_agrees_with_cryptography(records, number, idp) -> None:
    der = trio.run(build_crl, issuer(), Shard.from_records(records), number, NOW, NOW + 99, idp)
    parsed = x509.load_der_x509_crl(der)
    assert crl_serials_of(der) == [e.serial_number for e in parsed]
    assert (
        crl_number_of(der)
        == parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    )


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_gives_none_or_value_error(data: bytes) -> None:
    assert crl_number_of(data) is None or isinstance(crl_number_of(data), int)
    # Anything but ValueError (IndexError, a hang) fails the test.
    with contextlib.suppress(ValueError):
        crl_serials_of(data)


def test_a_truncated_crl_is_refused() -> None:
    der = trio.run(build_crl, issuer(), Shard(), 7, NOW, NOW + 99, None)
    assert crl_number_of(der[:-40]) is None
