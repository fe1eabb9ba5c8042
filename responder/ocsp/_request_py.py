"""Pure-Python twin of ext/ocsp_request.pyx: OCSPRequest DER decoder.

Both twins implement the same contract and raise the same messages; a
differential test runs them (and asn1crypto as the reference) on generated and
mutated inputs. Keep them in step: a change here is a change there.

Contract (RFC 6960 section 4.1.1, RFC 9654):
- The input is exactly one DER TLV: definite, minimal lengths; low tag numbers
  only; nothing after it. Every constructed TLV, including parts revocd ignores
  (requestorName, certificates in a signature), must itself be well formed.
- version, if present, is v1. requestList holds 1..MAX_CERT_IDS Requests.
- CertID hash algorithm is SHA-1, SHA-256, SHA-384 or SHA-512, parameters absent
  or NULL, and both hashes have that algorithm's length. The serial is a
  minimally encoded INTEGER of 1..MAX_SERIAL_OCTETS octets.
- Extensions: well-formed OID, BOOLEAN critical encoded as 0x00 or 0xFF, OCTET
  STRING value, no OID twice in one list, no unknown extension marked critical.
- Nonce (request extensions only): the extension value is one OCTET STRING of
  1..MAX_NONCE_OCTETS octets.
- An optionalSignature is checked for shape and otherwise ignored.
"""

from .errors import MalformedRequest
from .types import CertID, OCSPRequest

MAX_CERT_IDS = 100
MAX_NONCE_OCTETS = 128
MAX_SERIAL_OCTETS = 32

_SHA1 = bytes.fromhex("2b0e03021a")
_SHA2_PREFIX = bytes.fromhex("6086480165030402")
_NONCE = bytes.fromhex("2b0601050507300102")
# Extensions revocd understands (so they may be marked critical): nonce,
# acceptable responses, preferred signature algorithms.
_UNDERSTOOD = (_NONCE, bytes.fromhex("2b0601050507300104"), bytes.fromhex("2b0601050507300108"))
_DIGEST_SIZES = (20, 32, 48, 64)


def _tlv(data: bytes, pos: int, limit: int) -> tuple[int, int, int]:
    """Read the TLV header at pos; return (tag, content start, content end)."""
    if pos >= limit:
        raise MalformedRequest("truncated: expected a DER element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise MalformedRequest("high tag number form is not used in OCSP")
    if pos + 1 >= limit:
        raise MalformedRequest("truncated: missing length")
    first = data[pos + 1]
    if first < 0x80:
        start = pos + 2
        length = first
    elif first == 0x80:
        raise MalformedRequest("indefinite length is not DER")
    else:
        count = first & 0x7F
        if count > 4:
            raise MalformedRequest("length field too long")
        if pos + 2 + count > limit:
            raise MalformedRequest("truncated: length octets")
        if data[pos + 2] == 0:
            raise MalformedRequest("non-minimal length encoding")
        length = 0
        for i in range(count):
            length = (length << 8) | data[pos + 2 + i]
        if length < 0x80:
            raise MalformedRequest("non-minimal length encoding")
        start = pos + 2 + count
    end = start + length
    if end > limit:
        raise MalformedRequest("truncated: length runs past the enclosing element")
    return tag, start, end


def _check_tree(data: bytes, pos: int, limit: int, depth: int) -> None:
    """Check that [pos, limit) is a run of well-formed TLVs, recursing into constructed ones."""
    if depth > 32:
        raise MalformedRequest("nesting too deep")
    while pos < limit:
        tag, start, end = _tlv(data, pos, limit)
        if tag & 0x20:
            _check_tree(data, start, end, depth + 1)
        pos = end


def _check_oid(data: bytes, start: int, end: int) -> None:
    if start >= end:
        raise MalformedRequest("empty object identifier")
    if data[end - 1] & 0x80:
        raise MalformedRequest("object identifier ends mid-component")
    at_component_start = True
    for i in range(start, end):
        if at_component_start and data[i] == 0x80:
            raise MalformedRequest("non-minimal object identifier component")
        at_component_start = not (data[i] & 0x80)


def _algorithm(data: bytes, start: int, end: int) -> tuple[int, int]:
    """Check an AlgorithmIdentifier's content; return the OID content span."""
    tag, os_, oe = _tlv(data, start, end)
    if tag != 0x06:
        raise MalformedRequest("algorithm is not an OBJECT IDENTIFIER")
    _check_oid(data, os_, oe)
    if oe < end:
        _, _, pe = _tlv(data, oe, end)
        _check_tree(data, oe, pe, 1)
        if pe != end:
            raise MalformedRequest("unexpected data in AlgorithmIdentifier")
    return os_, oe


def _cert_id(data: bytes, header: int, start: int, end: int) -> CertID:
    tag, as_, ae = _tlv(data, start, end)
    if tag != 0x30:
        raise MalformedRequest("CertID hashAlgorithm is not a SEQUENCE")
    os_, oe = _algorithm(data, as_, ae)
    oid = data[os_:oe]
    if oid == _SHA1:
        alg = 0
    elif len(oid) == 9 and oid[:8] == _SHA2_PREFIX and 1 <= oid[8] <= 3:
        alg = oid[8]
    else:
        raise MalformedRequest("CertID hash algorithm is not SHA-1, SHA-256, SHA-384 or SHA-512")
    if oe < ae and not (ae - oe == 2 and data[oe] == 0x05 and data[oe + 1] == 0):
        raise MalformedRequest("CertID hash algorithm parameters are not NULL")
    size = _DIGEST_SIZES[alg]

    tag, ns, ne = _tlv(data, ae, end)
    if tag != 0x04:
        raise MalformedRequest("issuerNameHash is not an OCTET STRING")
    if ne - ns != size:
        raise MalformedRequest("issuerNameHash length does not match the hash algorithm")
    tag, ks, ke = _tlv(data, ne, end)
    if tag != 0x04:
        raise MalformedRequest("issuerKeyHash is not an OCTET STRING")
    if ke - ks != size:
        raise MalformedRequest("issuerKeyHash length does not match the hash algorithm")
    tag, ss, se = _tlv(data, ke, end)
    if tag != 0x02:
        raise MalformedRequest("serialNumber is not an INTEGER")
    n = se - ss
    if n == 0:
        raise MalformedRequest("serialNumber is empty")
    if n > MAX_SERIAL_OCTETS:
        raise MalformedRequest("serialNumber is too long")
    if n > 1 and (
        (data[ss] == 0 and data[ss + 1] < 0x80) or (data[ss] == 0xFF and data[ss + 1] >= 0x80)
    ):
        raise MalformedRequest("serialNumber is not minimally encoded")
    if se != end:
        raise MalformedRequest("unexpected data in CertID")
    return CertID(
        alg,
        data[ns:ne],
        data[ks:ke],
        int.from_bytes(data[ss:se], "big", signed=True),
        data[header:end],
    )


def _extensions(data: bytes, start: int, end: int, request_level: bool) -> bytes | None:
    """Walk an Extensions SEQUENCE; return the nonce when request_level and present."""
    tag, ls, le = _tlv(data, start, end)
    if tag != 0x30:
        raise MalformedRequest("Extensions is not a SEQUENCE")
    if le != end:
        raise MalformedRequest("unexpected data after Extensions")
    seen: list[bytes] = []
    nonce: bytes | None = None
    pos = ls
    while pos < le:
        tag, es, ee = _tlv(data, pos, le)
        if tag != 0x30:
            raise MalformedRequest("Extension is not a SEQUENCE")
        tag, os_, oe = _tlv(data, es, ee)
        if tag != 0x06:
            raise MalformedRequest("extnID is not an OBJECT IDENTIFIER")
        _check_oid(data, os_, oe)
        oid = data[os_:oe]
        if oid in seen:
            raise MalformedRequest("extension appears twice")
        seen.append(oid)
        critical = False
        tag, vs, ve = _tlv(data, oe, ee)
        if tag == 0x01:
            if ve - vs != 1 or data[vs] not in (0x00, 0xFF):
                raise MalformedRequest("critical is not a DER BOOLEAN")
            critical = data[vs] == 0xFF
            tag, vs, ve = _tlv(data, ve, ee)
        if tag != 0x04:
            raise MalformedRequest("extnValue is not an OCTET STRING")
        if ve != ee:
            raise MalformedRequest("unexpected data in Extension")
        if request_level and oid == _NONCE:
            tag, ns, ne = _tlv(data, vs, ve)
            if tag != 0x04 or ne != ve:
                raise MalformedRequest("nonce is not an OCTET STRING")
            if ne == ns:
                raise MalformedRequest("nonce is empty")
            if ne - ns > MAX_NONCE_OCTETS:
                raise MalformedRequest("nonce is longer than 128 octets")
            nonce = data[ns:ne]
        elif critical and oid not in _UNDERSTOOD:
            raise MalformedRequest("unsupported critical extension")
        pos = ee
    return nonce


def _signature(data: bytes, start: int, end: int) -> None:
    tag, ss, se = _tlv(data, start, end)
    if tag != 0x30 or se != end:
        raise MalformedRequest("optionalSignature is not a Signature SEQUENCE")
    tag, as_, ae = _tlv(data, ss, se)
    if tag != 0x30:
        raise MalformedRequest("signatureAlgorithm is not a SEQUENCE")
    _algorithm(data, as_, ae)
    tag, bs, be = _tlv(data, ae, se)
    if tag != 0x03:
        raise MalformedRequest("signature is not a BIT STRING")
    if be == bs or data[bs] > 7 or (be - bs == 1 and data[bs] != 0):
        raise MalformedRequest("signature BIT STRING is malformed")
    pos = be
    if pos < se:
        tag, cs, ce = _tlv(data, pos, se)
        if tag != 0xA0:
            raise MalformedRequest("unexpected data in Signature")
        tag, ls, le = _tlv(data, cs, ce)
        if tag != 0x30 or le != ce:
            raise MalformedRequest("certs is not a SEQUENCE OF Certificate")
        p = ls
        while p < le:
            tag, xs, xe = _tlv(data, p, le)
            if tag != 0x30:
                raise MalformedRequest("certificate is not a SEQUENCE")
            _check_tree(data, xs, xe, 2)
            p = xe
        pos = ce
    if pos != se:
        raise MalformedRequest("unexpected data in Signature")


def decode_request(data: bytes) -> OCSPRequest:
    """Decode an OCSPRequest; raise MalformedRequest naming the first problem."""
    n = len(data)
    if n == 0:
        raise MalformedRequest("empty request")
    tag, start, end = _tlv(data, 0, n)
    if tag != 0x30:
        raise MalformedRequest("OCSPRequest is not a SEQUENCE")
    if end != n:
        raise MalformedRequest("trailing data after OCSPRequest")

    tag, ts, te = _tlv(data, start, end)
    if tag != 0x30:
        raise MalformedRequest("tbsRequest is not a SEQUENCE")
    pos = ts
    if pos < te and data[pos] == 0xA0:
        _, vs, ve = _tlv(data, pos, te)
        tag, is_, ie = _tlv(data, vs, ve)
        if tag != 0x02 or ie != ve or ie - is_ != 1 or data[is_] != 0:
            raise MalformedRequest("request version is not v1")
        pos = ve
    if pos < te and data[pos] == 0xA1:
        _, gs, ge = _tlv(data, pos, te)
        _, _, ne = _tlv(data, gs, ge)
        if ne != ge:
            raise MalformedRequest("requestorName is not one GeneralName")
        _check_tree(data, gs, ge, 2)
        pos = ge

    tag, ls, le = _tlv(data, pos, te)
    if tag != 0x30:
        raise MalformedRequest("requestList is not a SEQUENCE")
    cert_ids: list[CertID] = []
    p = ls
    while p < le:
        if len(cert_ids) == MAX_CERT_IDS:
            raise MalformedRequest("more than 100 CertIDs in one request")
        tag, rs, re_ = _tlv(data, p, le)
        if tag != 0x30:
            raise MalformedRequest("Request is not a SEQUENCE")
        tag, cs, ce = _tlv(data, rs, re_)
        if tag != 0x30:
            raise MalformedRequest("CertID is not a SEQUENCE")
        cert_ids.append(_cert_id(data, rs, cs, ce))
        if ce < re_:
            tag, xs, xe = _tlv(data, ce, re_)
            if tag != 0xA0 or xe != re_:
                raise MalformedRequest("unexpected data in Request")
            _extensions(data, xs, xe, False)
        p = re_
    if not cert_ids:
        raise MalformedRequest("requestList is empty")
    pos = le

    nonce: bytes | None = None
    if pos < te and data[pos] == 0xA2:
        _, xs, xe = _tlv(data, pos, te)
        nonce = _extensions(data, xs, xe, True)
        pos = xe
    if pos != te:
        raise MalformedRequest("unexpected data in tbsRequest")

    signed = False
    if te < end:
        tag, ss, se = _tlv(data, te, end)
        if tag != 0xA0 or se != end:
            raise MalformedRequest("unexpected data after tbsRequest")
        _signature(data, ss, se)
        signed = True
    return OCSPRequest(cert_ids, nonce, signed)
