"""Every event rejection names the field and the problem (bad events get a 4xx naming it)."""

import time

import pytest

from responder.ingest import EventError, EventType, parse_event
from responder.ocsp.types import RevocationReason

from ..store_helpers import ISSUERS

NOW = int(time.time())
S = "1a2b3c"


def ev(**fields):
    base = {"issuer": "tls", "serial": S}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def future(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW + seconds))


CASES = {
    "not an object": (["issued"], "event: expected a JSON object"),
    "missing type": (ev(), "type: required"),
    "unknown type": (ev(type="expired"), "type: must be issued, revoked or unrevoked"),
    "unknown field": (
        ev(type="issued", not_after="2027-01-01T00:00:00Z", reason="x"),
        "reason: unknown field for a issued event",
    ),
    "missing issuer": (
        ev(type="issued", issuer=None, not_after="2027-01-01T00:00:00Z"),
        "issuer: required",
    ),
    "unknown issuer": (
        ev(type="issued", issuer="other", not_after="2027-01-01T00:00:00Z"),
        "issuer: unknown issuer 'other'",
    ),
    "missing serial": (
        ev(type="issued", serial=None, not_after="2027-01-01T00:00:00Z"),
        "serial: required",
    ),
    "serial as number": (
        ev(type="issued", serial=12, not_after="2027-01-01T00:00:00Z"),
        "serial: expected a hex string",
    ),
    "serial not hex": (
        ev(type="issued", serial="12xz", not_after="2027-01-01T00:00:00Z"),
        "serial: not a hex string",
    ),
    "serial zero": (
        ev(type="issued", serial="00", not_after="2027-01-01T00:00:00Z"),
        "serial: must be a positive integer of at most 20 octets",
    ),
    "serial 21 octets": (
        ev(type="issued", serial="01" * 21, not_after="2027-01-01T00:00:00Z"),
        "serial: must be a positive integer of at most 20 octets",
    ),
    "serial 160 bits": (
        ev(type="issued", serial="80" + "00" * 19, not_after="2027-01-01T00:00:00Z"),
        "serial: must be a positive integer of at most 20 octets",
    ),
    "missing not_after": (ev(type="issued"), "not_after: required"),
    "not_after not a time": (
        ev(type="issued", not_after="tomorrow"),
        "not_after: not an RFC 3339 time",
    ),
    "not_after without offset": (
        ev(type="issued", not_after="2027-01-01T00:00:00"),
        "not_after: needs a UTC offset",
    ),
    "missing revoked_at": (ev(type="revoked", reason="keyCompromise"), "revoked_at: required"),
    "revoked_at in the future": (
        ev(type="revoked", revoked_at=future(3600)),
        "revoked_at: in the future",
    ),
    "unknown reason": (
        ev(type="revoked", revoked_at="2026-01-01T00:00:00Z", reason="stolen"),
        "reason: unknown revocation reason 'stolen'",
    ),
    "removeFromCRL": (
        ev(type="revoked", revoked_at="2026-01-01T00:00:00Z", reason="removeFromCRL"),
        "reason: unknown revocation reason",
    ),
    "hold on TLS": (
        ev(type="revoked", revoked_at="2026-01-01T00:00:00Z", reason="certificateHold"),
        "reason: certificateHold is not allowed for tls issuers",
    ),
    "caCompromise on TLS leaf": (
        ev(type="revoked", revoked_at="2026-01-01T00:00:00Z", reason="cACompromise"),
        "reason: cACompromise is not allowed for tls issuers",
    ),
    "unrevoke on TLS": (ev(type="unrevoked"), "type: unrevoked lifts a certificateHold"),
    "unrevoke with extra field": (
        ev(type="unrevoked", issuer="smime", reason="x"),
        "reason: unknown field",
    ),
    "invalidity after revocation": (
        ev(
            type="revoked",
            revoked_at="2026-01-01T00:00:00Z",
            invalidity_date="2026-02-01T00:00:00Z",
        ),
        "invalidity_date: after revoked_at",
    ),
    "invalidity in the future": (
        ev(type="revoked", revoked_at="2026-01-01T00:00:00Z", invalidity_date=future(7200)),
        "invalidity_date: in the future",
    ),
    "time before 1950": (
        ev(type="revoked", revoked_at="1949-12-31T00:00:00Z"),
        "revoked_at: outside 1950..9999",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rejection_names_the_field(name):
    raw, message = CASES[name]
    with pytest.raises(EventError) as info:
        parse_event(raw, ISSUERS, NOW)
    assert str(info.value).startswith(message), str(info.value)


def test_accepted_forms():
    e = parse_event(
        ev(type="issued", serial="0x00:1A:2b", not_after="2027-01-01T00:00:00+01:00"), ISSUERS, NOW
    )
    assert e.serial == 0x1A2B and e.not_after == 1798758000
    e = parse_event(ev(type="revoked", revoked_at="2026-01-01T00:00:00Z"), ISSUERS, NOW)
    assert e.reason is RevocationReason.UNSPECIFIED
    # within the clock-skew allowance
    e = parse_event(ev(type="revoked", revoked_at=future(60)), ISSUERS, NOW)
    assert e.type is EventType.REVOKED
    e = parse_event(
        ev(
            type="revoked",
            issuer="smime",
            revoked_at="2026-01-01T00:00:00Z",
            reason="certificateHold",
        ),
        ISSUERS,
        NOW,
    )
    assert e.reason is RevocationReason.CERTIFICATE_HOLD
    e = parse_event({"type": "unrevoked", "issuer": "smime", "serial": "01"}, ISSUERS, NOW)
    assert e.serial == 1
    # the largest serial RFC 5280 allows: 20 octets with the top bit clear
    e = parse_event(
        ev(type="issued", serial="7f" + "ff" * 19, not_after="2027-01-01T00:00:00Z"), ISSUERS, NOW
    )
    assert e.serial.bit_length() == 159
