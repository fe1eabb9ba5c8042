"""The compiled response encoder and its twin produce identical DER, which asn1crypto reads back."""

import datetime as dt

import pytest
from asn1crypto import ocsp as asn1_ocsp
from hypothesis import given, settings
from hypothesis import strategies as st

from responder.ocsp import _response_py
from responder.ocsp.fast import RESPONSE_COMPILED, response_codec

from .. import reqbuild as rb

pytestmark = pytest.mark.skipif(not RESPONSE_COMPILED, reason="compiled encoder not built")

TIMES = st.integers(_response_py.MIN_TIME, _response_py.MAX_TIME)
REASONS = st.sampled_from([-1, 0, 1, 2, 3, 4, 5, 6, 8, 9, 10])
STATUS_NAMES = {0: "good", 1: "revoked", 2: "unknown"}


def _both(name, *args):
    out = []
    for module in (_response_py, response_codec):
        try:
            out.append(("ok", getattr(module, name)(*args)))
        except ValueError as exc:
            out.append(("error", str(exc)))
    assert out[0] == out[1], f"{name}{args!r}"
    return out[0]


@settings(max_examples=2000, deadline=None)
@given(TIMES)
def test_generalized_time_matches_datetime(t):
    _, der = _both("generalized_time", t)
    expect = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=t)).strftime(
        "%Y%m%d%H%M%SZ"
    )
    assert der == b"\x18\x0f" + expect.encode()


@given(st.sampled_from([_response_py.MIN_TIME - 1, _response_py.MAX_TIME + 1, -(2**40), 2**40]))
def test_generalized_time_out_of_range(t):
    assert _both("generalized_time", t)[0] == "error"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 255))
def test_der_header(length, tag):
    _, hdr = _both("der_header", tag, length)
    assert hdr[0] == tag
    parsed_len = hdr[1] if hdr[1] < 0x80 else int.from_bytes(hdr[2:], "big")
    assert parsed_len == length


@st.composite
def singles(draw):
    serial = draw(st.integers(1, 2**159))
    cid = rb.cert_id(serial=rb.integer(serial))
    status = draw(st.integers(0, 2))
    revoked_at = draw(TIMES) if status == 1 else 0
    reason = draw(REASONS) if status == 1 else -1
    this_update = draw(TIMES)
    next_update = draw(st.one_of(st.just(-1), TIMES))
    return cid, status, revoked_at, reason, this_update, next_update


@settings(max_examples=800, deadline=None)
@given(singles())
def test_single_response(args):
    kind, der = _both("encode_single_response", *args)
    assert kind == "ok"
    cid, status, revoked_at, reason, this_update, next_update = args
    parsed = asn1_ocsp.SingleResponse.load(der, strict=True)
    assert parsed["cert_id"].dump() == cid
    assert parsed["cert_status"].name == STATUS_NAMES[status]
    assert int(parsed["this_update"].native.timestamp()) == this_update
    if next_update < 0:
        assert not parsed["next_update"].contents
    else:
        assert int(parsed["next_update"].native.timestamp()) == next_update
    if status == 1:
        info = parsed["cert_status"].chosen
        assert int(info["revocation_time"].native.timestamp()) == revoked_at
        if reason < 0:
            assert not info["revocation_reason"].contents
        else:
            assert info["revocation_reason"].contents == bytes([reason])
    assert parsed.dump(force=True) == der  # our bytes are DER


@given(st.integers(3, 9).filter(lambda s: s != 7) | st.just(7) | st.integers(11, 40))
def test_bad_status_or_reason_rejected(value):
    cid = rb.cert_id()
    if value > 2:
        assert _both("encode_single_response", cid, value, 0, -1, 0, -1)[0] == "error"
    if value in (7,) or value > 10:
        assert _both("encode_single_response", cid, 1, 0, value, 0, -1)[0] == "error"


@settings(max_examples=500, deadline=None)
@given(
    st.lists(singles(), min_size=1, max_size=4),
    TIMES,
    st.none() | st.binary(min_size=1, max_size=128),
    st.binary(min_size=20, max_size=20),
)
def test_response_data_and_envelope(single_args, produced_at, nonce, key_hash):
    encoded = [_both("encode_single_response", *a)[1] for a in single_args]
    kind, tbs = _both("encode_response_data", key_hash, produced_at, encoded, nonce)
    assert kind == "ok"
    parsed = asn1_ocsp.ResponseData.load(tbs, strict=True)
    assert parsed["responder_id"].name == "by_key"
    assert parsed["responder_id"].chosen.native == key_hash
    assert int(parsed["produced_at"].native.timestamp()) == produced_at
    assert [r.dump() for r in parsed["responses"]] == encoded
    exts = parsed["response_extensions"]
    if nonce is None:
        assert not exts.contents
    else:
        assert exts[0]["extn_id"].native == "nonce"
        assert exts[0]["extn_value"].parsed.native == nonce
    assert parsed.dump(force=True) == tbs

    sig = b"\x30\x06\x02\x01\x01\x02\x01\x02"
    alg = bytes.fromhex("300a06082a8648ce3d040302")
    for certs in ([], [rb.seq(rb.integer(7))], [rb.seq(rb.integer(7)), rb.seq(rb.integer(8))]):
        kind, full = _both("encode_ocsp_response", tbs, alg, sig, certs)
        response = asn1_ocsp.OCSPResponse.load(full, strict=True)
        assert response["response_status"].native == "successful"
        basic = response["response_bytes"]["response"].parsed
        assert basic["tbs_response_data"].dump() == tbs
        assert basic["signature"].native == sig
        assert basic["signature_algorithm"].dump() == alg
        assert len(basic["certs"]) == len(certs)


def test_response_data_rejects_bad_arguments():
    single = _both("encode_single_response", rb.cert_id(), 0, 0, -1, 0, -1)[1]
    assert _both("encode_response_data", b"\x00" * 19, 0, [single], None)[0] == "error"
    assert _both("encode_response_data", b"\x00" * 20, 0, [], None)[0] == "error"
    assert _both("encode_response_data", b"\x00" * 20, 0, [single], b"")[0] == "error"
    assert _both("encode_response_data", b"\x00" * 20, 0, [single], b"x" * 129)[0] == "error"


def test_long_lengths():
    """Elements over 64 KiB (many SingleResponses, big certificate chains) get long-form lengths."""
    big = rb.seq(b"\x04\x83\x01\x00\x00" + b"\x00" * 0x10000)
    kind, full = _both("encode_ocsp_response", b"\x30\x00", b"\x30\x00", b"s", [big])
    assert kind == "ok"
    assert asn1_ocsp.OCSPResponse.load(full, strict=True)["response_status"].native == "successful"
