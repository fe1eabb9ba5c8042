"""Malformed and hostile OCSP requests get malformedRequest, never another exception.

RFC 6960 section 4.2.1: a request that cannot be parsed is answered with the
unsigned malformedRequest status. Every case runs on both decoder twins.
"""

import os

import pytest
from asn1crypto import ocsp as asn1_ocsp

from responder.ocsp import (
    ERROR_RESPONSES,
    MalformedRequest,
    ResponseStatus,
    _request_py,
    decode_get,
    error_response,
)
from responder.ocsp.fast import REQUEST_COMPILED, request_codec

from .. import reqbuild as rb

TWINS = [pytest.param(_request_py.decode_request, id="python")]
if REQUEST_COMPILED:
    TWINS.append(pytest.param(request_codec.decode_request, id="cython"))

VALID = rb.request(extensions=[rb.nonce_ext(b"\x01" * 16)])


def _nested(depth: int) -> bytes:
    inner = b"\x05\x00"
    for _ in range(depth):
        inner = rb.tlv(0xA0, inner)
    return inner


HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "one byte": b"\x30",
    "truncated header": VALID[:1],
    "truncated in CertID": VALID[: len(VALID) // 2],
    "truncated by one": VALID[:-1],
    "trailing garbage": VALID + b"\x00",
    "trailing element": VALID + b"\x05\x00",
    "wrong outer tag": b"\x31" + VALID[1:],
    "wrong tbsRequest tag": rb.tlv(0x30, rb.tlv(0x31, b"")),
    "huge length": b"\x30\x84\xff\xff\xff\xff" + VALID[2:],
    "five length octets": b"\x30\x85\x01\x00\x00\x00\x00",
    "indefinite length": b"\x30\x80" + VALID[2:] + b"\x00\x00",
    "non-minimal length": b"\x30\x81" + VALID[1:2] + VALID[2:],
    "length zero-padded": b"\x30\x82\x00" + VALID[1:2] + VALID[2:],
    "inner length past end": rb.seq(b"\x30\x7f" + b"\x00" * 10),
    "high tag number": rb.request(tbs_extra=b"\x1f\x81\x01\x00"),
    "http garbage": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "random bytes": os.urandom(8).replace(b"\x30", b"\x31") + b"\xff" * 64,
    "nonce 0 octets": rb.request(extensions=[rb.nonce_ext(b"")]),
    "nonce 129 octets": rb.request(extensions=[rb.nonce_ext(b"\x07" * 129)]),
    "nonce not wrapped": rb.request(extensions=[rb.extension(rb.NONCE_OID, b"\x01" * 16)]),
    "nonce twice": rb.request(extensions=[rb.nonce_ext(b"a"), rb.nonce_ext(b"b")]),
    "101 CertIDs": rb.request(cert_ids=[rb.cert_id()] * 101),
    "empty requestList": rb.request(cert_ids=[]),
    "MD5 CertID": rb.request(cert_ids=[rb.cert_id(alg=rb.MD5)]),
    "hash params not NULL": rb.request(cert_ids=[rb.cert_id(params=b"\x02\x01\x00")]),
    "name hash too short": rb.request(cert_ids=[rb.cert_id(name_hash=b"\x00" * 19)]),
    "key hash too long": rb.request(cert_ids=[rb.cert_id(key_hash=b"\x00" * 32)]),
    "SHA-256 with SHA-1 sized hashes": rb.request(
        cert_ids=[rb.cert_id(alg=rb.SHA256, name_hash=b"\x00" * 20, key_hash=b"\x00" * 20)]
    ),
    "serial not INTEGER": rb.request(cert_ids=[rb.cert_id(serial=b"\x04\x01\x01")]),
    "serial empty": rb.request(cert_ids=[rb.cert_id(serial=b"\x02\x00")]),
    "serial non-minimal": rb.request(cert_ids=[rb.cert_id(serial=b"\x02\x02\x00\x01")]),
    "serial 33 octets": rb.request(cert_ids=[rb.cert_id(serial=rb.tlv(0x02, b"\x01" * 33))]),
    "CertID extra field": rb.request(cert_ids=[rb.cert_id(extra=b"\x05\x00")]),
    "version v2": rb.request(version=rb.integer(1)),
    "version not INTEGER": rb.request(version=b"\x04\x01\x00"),
    "unknown critical extension": rb.request(
        extensions=[rb.extension(bytes.fromhex("06032a0304"), b"\x05\x00", b"\x01\x01\xff")]
    ),
    "critical BOOLEAN 0x01": rb.request(
        extensions=[rb.extension(rb.NONCE_OID, rb.tlv(0x04, b"n"), b"\x01\x01\x01")]
    ),
    "extnValue not OCTET STRING": rb.request(
        extensions=[rb.seq(rb.NONCE_OID, rb.tlv(0x03, b"\x00n"))]
    ),
    "extension OID non-minimal": rb.request(
        extensions=[rb.extension(bytes.fromhex("0603808101"), b"\x05\x00")]
    ),
    "extension OID cut mid-component": rb.request(
        extensions=[rb.extension(bytes.fromhex("06022a83"), b"\x05\x00")]
    ),
    "critical unknown single extension": rb.request(
        single_extensions=[rb.extension(bytes.fromhex("06032a0304"), b"\x05\x00", b"\x01\x01\xff")]
    ),
    "data after extensions": rb.request(extensions=[], tbs_extra=b"\x05\x00"),
    "signature not BIT STRING": rb.request(signature=rb.signature(bits=b"\x04\x02\x00\x00")),
    "signature bad unused bits": rb.request(signature=rb.signature(bits=b"\x03\x02\x08\x00")),
    "signature cert not SEQUENCE": rb.request(signature=rb.signature(certs=[b"\x04\x00"])),
    "deep nesting in requestorName": rb.request(requestor=_nested(40)),
    "requestorName two elements": rb.request(requestor=b"\x82\x01a\x82\x01b"),
    "broken TLV inside requestorName": rb.request(requestor=rb.tlv(0xA4, b"\x30\x05\x00")),
}


@pytest.mark.parametrize("decode", TWINS)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_request_is_malformed(decode, name):
    with pytest.raises(MalformedRequest) as info:
        decode(HOSTILE[name])
    assert str(info.value)  # the log line names the problem


def test_at_least_thirty_cases():
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize("decode", TWINS)
def test_valid_baseline_decodes(decode):
    """The hostile cases are mutations of requests that do decode."""
    request = decode(VALID)
    assert request.nonce == b"\x01" * 16
    assert decode(rb.request(cert_ids=[rb.cert_id()] * 100)).cert_ids[99].serial == 1
    assert decode(rb.request(extensions=[rb.nonce_ext(b"\x07" * 128)])).nonce == b"\x07" * 128
    assert decode(rb.request(extensions=[rb.nonce_ext(b"\x07")])).nonce == b"\x07"
    assert decode(rb.request(requestor=_nested(20))).cert_ids


BAD_GET_PATHS = [
    "/",
    "/!!!!",
    "/MEIwQDA+MDwwOjAJBgUrDgMCGgUABBQ",  # cut mid-request
    "/M",  # one base64 character cannot be decoded
    "/%ZZ%ZZ",
    "/%C3%28",  # invalid UTF-8 after unescaping
    "/MEIw\x00QDA",
    "/other/MEIwQDA+",
]


@pytest.mark.parametrize("path", BAD_GET_PATHS)
def test_bad_get_paths_are_malformed(path):
    with pytest.raises(MalformedRequest):
        decode_get(path, "/ocsp/" if path.startswith("/other") else "/")


def test_error_responses_are_the_unsigned_statuses():
    """RFC 6960 section 4.2.1: error answers carry only responseStatus."""
    expect = {
        ResponseStatus.MALFORMED_REQUEST: "malformed_request",
        ResponseStatus.INTERNAL_ERROR: "internal_error",
        ResponseStatus.TRY_LATER: "try_later",
        ResponseStatus.SIG_REQUIRED: "sign_required",
        ResponseStatus.UNAUTHORIZED: "unauthorized",
    }
    assert set(ERROR_RESPONSES) == set(expect)
    for status, native in expect.items():
        parsed = asn1_ocsp.OCSPResponse.load(error_response(status))
        assert parsed["response_status"].native == native
        assert not parsed["response_bytes"].contents


def test_compiled_decoder_is_built():
    """`make` builds the Cython modules; a silent fallback to the twin would hide slowness."""
    assert REQUEST_COMPILED or os.environ.get("REVOCD_PURE_PYTHON") == "1"
