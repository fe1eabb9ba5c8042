"""The compiled CRL encoder and its twin produce identical DER, which cryptography reads back."""

import datetime as dt

import pytest
from asn1crypto import crl as asn1_crl
from hypothesis import given, settings
from hypothesis import strategies as st

from crlgen import _entries_py
from crlgen.fast import ENTRIES_COMPILED, entries_codec
from responder.ocsp import der
from responder.ocsp.types import RevocationReason
from responder.store import CertRecord, Status

pytestmark = pytest.mark.skipif(not ENTRIES_COMPILED, reason="compiled encoder not built")

TIMES = st.integers(der.MIN_TIME, der.MAX_TIME)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def both(name, *args):
    out = []
    for module in (_entries_py, entries_codec):
        try:
            out.append(("ok", getattr(module, name)(*args)))
        except ValueError as exc:
            out.append(("error", str(exc)))
    assert out[0] == out[1], f"{name}{args!r}"
    return out[0]


@settings(max_examples=2000, deadline=None)
@given(TIMES)
def test_times(t):
    moment = EPOCH + dt.timedelta(seconds=t)
    _kind, der = both("x509_time", t)
    if moment.year < 2050:  # RFC 5280 section 5.1.2.4
        assert der == b"\x17\x0d" + moment.strftime("%y%m%d%H%M%SZ").encode()
    else:
        assert der == b"\x18\x0f" + moment.strftime("%Y%m%d%H%M%SZ").encode()
    assert both("generalized_time", t)[1] == b"\x18\x0f" + moment.strftime("%Y%m%d%H%M%SZ").encode()


def test_utc_generalized_boundary():
    last_utc = int(dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp())
    assert both("x509_time", last_utc)[1].startswith(b"\x17")
    assert both("x509_time", last_utc + 1)[1].startswith(b"\x18")


@settings(max_examples=1500, deadline=None)
@given(
    st.integers(-5, 2**160),
    TIMES,
    st.sampled_from([-1, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    st.one_of(st.just(-1), st.integers(0, der.MAX_TIME + 5)),
)
def test_entries(serial, revoked_at, reason, invalidity):
    kind, der = both("encode_entry", serial, revoked_at, reason, invalidity)
    if kind == "error":
        return
    assert both("encode_entries", [serial], [revoked_at], [reason], [invalidity]) == ("ok", [der])
    # An independent reader agrees on every field, and the bytes are DER.
    parsed = asn1_crl.RevokedCertificate.load(der, strict=True)
    assert parsed["user_certificate"].native == serial
    assert int(parsed["revocation_date"].native.timestamp()) == revoked_at
    exts = {e["extn_id"].native: e["extn_value"].parsed for e in parsed["crl_entry_extensions"]}
    assert ("crl_reason" in exts) == (reason >= 0)
    if reason >= 0:
        assert exts["crl_reason"].contents == bytes([reason])
    if invalidity >= 0:
        assert int(exts["invalidity_date"].native.timestamp()) == invalidity
    assert parsed.dump(force=True) == der


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(1, 2**159 - 1), max_size=20, unique=True),
    TIMES,
    TIMES,
    st.binary(max_size=40),
    st.binary(min_size=1, max_size=80),
)
def test_tbs_and_envelope(serials, this_update, next_update, extensions, signature):
    entries = [_entries_py.encode_entry(s, this_update, 1, -1) for s in sorted(serials)]
    alg = bytes.fromhex("300a06082a8648ce3d040302")
    name = bytes.fromhex("3011310f300d06035504030c0674657374")
    kind, tbs = both("tbs_cert_list", alg, name, this_update, next_update, entries, extensions)
    assert kind == "ok"
    assert both("certificate_list", tbs, alg, signature)[0] == "ok"


def test_large_lists_use_long_lengths():
    entries = [_entries_py.encode_entry(s, 0, -1, -1) for s in range(1, 5000)]
    alg = bytes.fromhex("300a06082a8648ce3d040302")
    kind, tbs = both("tbs_cert_list", alg, b"\x30\x00", 0, 86400, entries, b"")
    assert kind == "ok" and tbs[1] == 0x83  # over 64 KiB


RECORDS = st.lists(
    st.builds(
        lambda serial, revoked_at, reason, invalidity: CertRecord(
            serial,
            Status.REVOKED,
            None,
            1,
            0,
            0,
            revoked_at=revoked_at,
            reason=reason,
            invalidity_date=invalidity,
        ),
        st.integers(-2, 2**160),
        st.none() | TIMES,
        st.none() | st.sampled_from(list(RevocationReason)),
        st.none() | st.integers(0, der.MAX_TIME + 5),
    ),
    max_size=12,
)


@settings(max_examples=800, deadline=None)
@given(RECORDS)
def test_encode_records_agrees_with_encode_entry(records):
    """What Shard.from_records uses: the twins agree, and each entry is encode_entry of
    the record's fields (unspecified and no reason both leave the reason out)."""
    kind, result = both("encode_records", records)
    if kind == "error":
        return
    serials, entries = result
    assert serials == [r.serial for r in records]
    for record, entry in zip(records, entries, strict=True):
        code = -1 if record.reason in (None, RevocationReason.UNSPECIFIED) else int(record.reason)
        invalidity = -1 if record.invalidity_date is None else record.invalidity_date
        assert entry == _entries_py.encode_entry(record.serial, record.revoked_at, code, invalidity)


@settings(max_examples=800, deadline=None)
@given(RECORDS)
def test_encode_sorted_is_encode_records_in_serial_order(records):
    """The compiled twin sorts serials as fixed-width octets in C and encodes from them:
    the same as sorting the records by serial and encoding each, errors included."""
    kind, result = both("encode_sorted", records)
    if kind == "error":
        return
    ordered = sorted(records, key=lambda r: r.serial)
    assert result == _entries_py.encode_records(ordered)
    assert result[0] == sorted(r.serial for r in records)
