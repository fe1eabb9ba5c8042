"""Differential test: Cython decoder == pure-Python twin, and both agree with asn1crypto.

Inputs are generated requests (valid and subtly invalid) and byte-level
mutations of them. The twins must return equal results or raise the same
message; against the asn1crypto reference they must agree on acceptance and,
when accepted, on every decoded value.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responder.ocsp import MalformedRequest, _request_py
from responder.ocsp.fast import REQUEST_COMPILED, request_codec

from .. import reqbuild as rb
from ..asn1_reference import Rejected, reference_decode

pytestmark = pytest.mark.skipif(
    not REQUEST_COMPILED, reason="compiled decoder not built (REVOCD_PURE_PYTHON=1?)"
)

ALGS = [rb.SHA1, rb.SHA256, rb.SHA384, rb.SHA512]
OTHER_OIDS = [
    bytes.fromhex("06092b0601050507300104"),  # acceptable responses
    bytes.fromhex("06092b0601050507300107"),  # service locator
    bytes.fromhex("06032a0304"),
]


@st.composite
def serials(draw):
    if draw(st.integers(0, 9)) == 0:
        return rb.tlv(0x02, draw(st.binary(min_size=0, max_size=34)))
    return rb.integer(draw(st.integers(-(2**200), 2**260)))


@st.composite
def cert_ids(draw):
    alg = draw(
        st.sampled_from([*ALGS, rb.MD5]) if draw(st.integers(0, 19)) == 0 else st.sampled_from(ALGS)
    )
    size = rb.SIZES[alg]
    if draw(st.integers(0, 14)) == 0:
        size = draw(st.integers(0, 70))
    params = draw(st.sampled_from([rb.NULL, None, rb.NULL, b"\x02\x01\x00"]))
    return rb.cert_id(
        alg=alg,
        params=params,
        name_hash=draw(st.binary(min_size=size, max_size=size)),
        key_hash=draw(st.binary(min_size=size, max_size=size)),
        serial=draw(serials()),
    )


@st.composite
def extensions(draw, allow_nonce=True):
    exts = []
    if allow_nonce and draw(st.booleans()):
        n = draw(st.sampled_from([0, 1, 16, 32, 128, 129, 200]))
        exts.append(rb.nonce_ext(draw(st.binary(min_size=n, max_size=n))))
    for _ in range(draw(st.integers(0, 2))):
        critical = draw(st.sampled_from([None, b"\x01\x01\xff", b"\x01\x01\x00", b"\x01\x01\x01"]))
        exts.append(rb.extension(draw(st.sampled_from(OTHER_OIDS)), b"\x05\x00", critical))
    return draw(st.permutations(exts))


@st.composite
def requests(draw):
    n = draw(st.sampled_from([1, 1, 1, 2, 3, 0]))
    ids = [draw(cert_ids()) for _ in range(n)]
    version = draw(st.sampled_from([None, None, rb.integer(0), rb.integer(1)]))
    requestor = draw(st.sampled_from([None, None, b"\x82\x07example", rb.tlv(0xA4, rb.seq())]))
    exts = draw(st.none() | extensions())
    single = draw(st.none() | extensions(allow_nonce=False))
    signature = None
    if draw(st.integers(0, 4)) == 0:
        certs = draw(st.sampled_from([None, [rb.seq(rb.integer(5))], []]))
        signature = rb.signature(certs=certs)
    return rb.request(ids, exts, version, requestor, single, signature)


@st.composite
def mutated(draw):
    data = bytearray(draw(requests()))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 4))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == 0:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == 1:
            data[i] = draw(st.sampled_from([0x00, 0x80, 0x81, 0x82, 0x84, 0xFF, 0x30, 0xA0, 0x04]))
        elif kind == 2:
            del data[i]
        elif kind == 3:
            data.insert(i, draw(st.integers(0, 255)))
        else:
            del data[i:]
    return bytes(data)


def _run(decode, data):
    try:
        return ("ok", decode(data))
    except MalformedRequest as exc:
        return ("malformed", str(exc))


def _check(data: bytes) -> None:
    py = _run(_request_py.decode_request, data)
    cy = _run(request_codec.decode_request, data)
    assert py == cy, f"twins disagree on {data.hex()}"
    try:
        ref = reference_decode(data)
    except Rejected as exc:
        assert py[0] == "malformed", f"reference rejects ({exc}) but twins accept {data.hex()}"
        return
    assert py[0] == "ok", f"reference accepts but twins reject ({py[1]}): {data.hex()}"
    request = py[1]
    got = [
        (c.hash_algorithm, c.issuer_name_hash, c.issuer_key_hash, c.serial, c.der)
        for c in request.cert_ids
    ]
    assert (got, request.nonce, request.signed) == ref


SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(requests())
def test_generated_requests(data):
    _check(data)


@SETTINGS
@given(mutated())
def test_mutated_requests(data):
    _check(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data):
    _check(data)


def test_openssl_shaped_requests(test_pki, tmp_path):
    from ..conftest import openssl

    for digest in ("-sha1", "-sha256", "-sha384", "-sha512"):
        req = tmp_path / "r.der"
        openssl(
            "ocsp",
            "-issuer",
            test_pki.path("issuer.pem"),
            digest,
            "-cert",
            test_pki.path("good.pem"),
            "-cert",
            test_pki.path("extra.pem"),
            "-reqout",
            req,
        )
        _check(req.read_bytes())
        assert _request_py.decode_request(req.read_bytes()).cert_ids[1].serial == (
            test_pki.leaves["extra"].cert.serial_number
        )


def test_primitive_explicit_tag_is_rejected():
    """Found by hypothesis: [1] requestorName in primitive form (0x81). asn1crypto accepts
    it; DER requires an EXPLICIT tag to be constructed, and both twins reject it."""
    data = bytes.fromhex(
        "308180307e8104a4023000307630743072300b06096086480165030402010420"
        + "00" * 32
        + "0420"
        + "00" * 32
        + "021f01"
        + "00" * 30
    )
    _check(data)
    assert _run(_request_py.decode_request, data)[0] == "malformed"


def test_a_requestor_name_holding_two_elements_is_refused_by_both() -> None:
    """Found by test_mutated_requests: `[1] { [4] {} SEQUENCE {} }` is not one
    GeneralName; the reference once let asn1crypto read the first and ignore the rest."""
    _check(
        bytes.fromhex(
            "3062304ba003020100a104a4003000303e303c303a300906052b0e03021a0500041400000000000000"
            "00000000000000000000000000041400000000000000000000000000000000000000000201"
            "00a0133011300a06082a8648ce3d040302030300abcd"
        )
    )
