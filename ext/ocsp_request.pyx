# cython: language_level=3
"""Compiled OCSPRequest DER decoder: the hot path of every OCSP answer.

Twin of responder/ocsp/_request_py.py. Same contract, same messages; the
differential test in tests/test_request_differential.py holds them together.
"""

from responder.ocsp.errors import MalformedRequest
from responder.ocsp.types import CertID, OCSPRequest

cdef enum:
    MAX_CERT_IDS = 100
    MAX_NONCE_OCTETS = 128
    MAX_SERIAL_OCTETS = 32
    MAX_DEPTH = 32

cdef const unsigned char* SHA1_OID = <const unsigned char*>b"\x2b\x0e\x03\x02\x1a"
cdef const unsigned char* SHA2_PREFIX = <const unsigned char*>b"\x60\x86\x48\x01\x65\x03\x04\x02"
# id-pkix-ocsp arc 1.3.6.1.5.5.7.48.1 (8 octets) + last component
cdef const unsigned char* PKIX_OCSP = <const unsigned char*>b"\x2b\x06\x01\x05\x05\x07\x30\x01"
cdef int[4] DIGEST_SIZES = [20, 32, 48, 64]


cdef int _tlv(const unsigned char* d, Py_ssize_t pos, Py_ssize_t limit,
              Py_ssize_t* start, Py_ssize_t* end) except -1:
    cdef int tag, first, count, i
    cdef Py_ssize_t length
    if pos >= limit:
        raise MalformedRequest("truncated: expected a DER element")
    tag = d[pos]
    if tag & 0x1F == 0x1F:
        raise MalformedRequest("high tag number form is not used in OCSP")
    if pos + 1 >= limit:
        raise MalformedRequest("truncated: missing length")
    first = d[pos + 1]
    if first < 0x80:
        start[0] = pos + 2
        length = first
    elif first == 0x80:
        raise MalformedRequest("indefinite length is not DER")
    else:
        count = first & 0x7F
        if count > 4:
            raise MalformedRequest("length field too long")
        if pos + 2 + count > limit:
            raise MalformedRequest("truncated: length octets")
        if d[pos + 2] == 0:
            raise MalformedRequest("non-minimal length encoding")
        length = 0
        for i in range(count):
            length = (length << 8) | d[pos + 2 + i]
        if length < 0x80:
            raise MalformedRequest("non-minimal length encoding")
        start[0] = pos + 2 + count
    if length > limit - start[0]:
        raise MalformedRequest("truncated: length runs past the enclosing element")
    end[0] = start[0] + length
    return tag


cdef int _check_tree(const unsigned char* d, Py_ssize_t pos, Py_ssize_t limit, int depth) except -1:
    cdef Py_ssize_t s, e
    cdef int tag
    if depth > MAX_DEPTH:
        raise MalformedRequest("nesting too deep")
    while pos < limit:
        tag = _tlv(d, pos, limit, &s, &e)
        if tag & 0x20:
            _check_tree(d, s, e, depth + 1)
        pos = e
    return 0


cdef int _check_oid(const unsigned char* d, Py_ssize_t start, Py_ssize_t end) except -1:
    cdef Py_ssize_t i
    cdef bint at_start = True
    if start >= end:
        raise MalformedRequest("empty object identifier")
    if d[end - 1] & 0x80:
        raise MalformedRequest("object identifier ends mid-component")
    for i in range(start, end):
        if at_start and d[i] == 0x80:
            raise MalformedRequest("non-minimal object identifier component")
        at_start = not (d[i] & 0x80)
    return 0


cdef inline bint _eq(const unsigned char* d, Py_ssize_t s, Py_ssize_t e,
                     const unsigned char* ref, Py_ssize_t n):
    cdef Py_ssize_t i
    if e - s != n:
        return False
    for i in range(n):
        if d[s + i] != ref[i]:
            return False
    return True


cdef inline int _pkix_ocsp_leaf(const unsigned char* d, Py_ssize_t s, Py_ssize_t e):
    """Last component of an id-pkix-ocsp OID, or -1 when the OID is outside that arc."""
    if e - s != 9 or not _eq(d, s, s + 8, PKIX_OCSP, 8):
        return -1
    return d[s + 8]


cdef int _algorithm(const unsigned char* d, Py_ssize_t start, Py_ssize_t end,
                    Py_ssize_t* os, Py_ssize_t* oe) except -1:
    cdef int tag
    cdef Py_ssize_t ps, pe
    tag = _tlv(d, start, end, os, oe)
    if tag != 0x06:
        raise MalformedRequest("algorithm is not an OBJECT IDENTIFIER")
    _check_oid(d, os[0], oe[0])
    if oe[0] < end:
        _tlv(d, oe[0], end, &ps, &pe)
        _check_tree(d, oe[0], pe, 1)
        if pe != end:
            raise MalformedRequest("unexpected data in AlgorithmIdentifier")
    return 0


cdef object _cert_id(bytes data, const unsigned char* d, Py_ssize_t header,
                     Py_ssize_t start, Py_ssize_t end):
    cdef int tag, alg, size
    cdef Py_ssize_t as_, ae, os_, oe, ns, ne, ks, ke, ss, se, n
    tag = _tlv(d, start, end, &as_, &ae)
    if tag != 0x30:
        raise MalformedRequest("CertID hashAlgorithm is not a SEQUENCE")
    _algorithm(d, as_, ae, &os_, &oe)
    if _eq(d, os_, oe, SHA1_OID, 5):
        alg = 0
    elif oe - os_ == 9 and _eq(d, os_, os_ + 8, SHA2_PREFIX, 8) and 1 <= d[os_ + 8] <= 3:
        alg = d[os_ + 8]
    else:
        raise MalformedRequest("CertID hash algorithm is not SHA-1, SHA-256, SHA-384 or SHA-512")
    if oe < ae and not (ae - oe == 2 and d[oe] == 0x05 and d[oe + 1] == 0):
        raise MalformedRequest("CertID hash algorithm parameters are not NULL")
    size = DIGEST_SIZES[alg]

    tag = _tlv(d, ae, end, &ns, &ne)
    if tag != 0x04:
        raise MalformedRequest("issuerNameHash is not an OCTET STRING")
    if ne - ns != size:
        raise MalformedRequest("issuerNameHash length does not match the hash algorithm")
    tag = _tlv(d, ne, end, &ks, &ke)
    if tag != 0x04:
        raise MalformedRequest("issuerKeyHash is not an OCTET STRING")
    if ke - ks != size:
        raise MalformedRequest("issuerKeyHash length does not match the hash algorithm")
    tag = _tlv(d, ke, end, &ss, &se)
    if tag != 0x02:
        raise MalformedRequest("serialNumber is not an INTEGER")
    n = se - ss
    if n == 0:
        raise MalformedRequest("serialNumber is empty")
    if n > MAX_SERIAL_OCTETS:
        raise MalformedRequest("serialNumber is too long")
    if n > 1 and ((d[ss] == 0 and d[ss + 1] < 0x80) or (d[ss] == 0xFF and d[ss + 1] >= 0x80)):
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


cdef object _extensions(bytes data, const unsigned char* d, Py_ssize_t start, Py_ssize_t end,
                        bint request_level):
    cdef int tag, leaf
    cdef Py_ssize_t ls, le, pos, es, ee, os_, oe, vs, ve, ns, ne, i
    cdef bint critical
    cdef list seen = []
    cdef object nonce = None
    cdef bytes oid
    tag = _tlv(d, start, end, &ls, &le)
    if tag != 0x30:
        raise MalformedRequest("Extensions is not a SEQUENCE")
    if le != end:
        raise MalformedRequest("unexpected data after Extensions")
    pos = ls
    while pos < le:
        tag = _tlv(d, pos, le, &es, &ee)
        if tag != 0x30:
            raise MalformedRequest("Extension is not a SEQUENCE")
        tag = _tlv(d, es, ee, &os_, &oe)
        if tag != 0x06:
            raise MalformedRequest("extnID is not an OBJECT IDENTIFIER")
        _check_oid(d, os_, oe)
        oid = data[os_:oe]
        if oid in seen:
            raise MalformedRequest("extension appears twice")
        seen.append(oid)
        critical = False
        tag = _tlv(d, oe, ee, &vs, &ve)
        if tag == 0x01:
            if ve - vs != 1 or (d[vs] != 0x00 and d[vs] != 0xFF):
                raise MalformedRequest("critical is not a DER BOOLEAN")
            critical = d[vs] == 0xFF
            tag = _tlv(d, ve, ee, &vs, &ve)
        if tag != 0x04:
            raise MalformedRequest("extnValue is not an OCTET STRING")
        if ve != ee:
            raise MalformedRequest("unexpected data in Extension")
        leaf = _pkix_ocsp_leaf(d, os_, oe)
        if request_level and leaf == 2:
            tag = _tlv(d, vs, ve, &ns, &ne)
            if tag != 0x04 or ne != ve:
                raise MalformedRequest("nonce is not an OCTET STRING")
            if ne == ns:
                raise MalformedRequest("nonce is empty")
            if ne - ns > MAX_NONCE_OCTETS:
                raise MalformedRequest("nonce is longer than 128 octets")
            nonce = data[ns:ne]
        elif critical and leaf != 2 and leaf != 4 and leaf != 8:
            raise MalformedRequest("unsupported critical extension")
        pos = ee
    return nonce


cdef int _signature(const unsigned char* d, Py_ssize_t start, Py_ssize_t end) except -1:
    cdef int tag
    cdef Py_ssize_t ss, se, as_, ae, os_, oe, bs, be, cs, ce, ls, le, p, xs, xe, pos
    tag = _tlv(d, start, end, &ss, &se)
    if tag != 0x30 or se != end:
        raise MalformedRequest("optionalSignature is not a Signature SEQUENCE")
    tag = _tlv(d, ss, se, &as_, &ae)
    if tag != 0x30:
        raise MalformedRequest("signatureAlgorithm is not a SEQUENCE")
    _algorithm(d, as_, ae, &os_, &oe)
    tag = _tlv(d, ae, se, &bs, &be)
    if tag != 0x03:
        raise MalformedRequest("signature is not a BIT STRING")
    if be == bs or d[bs] > 7 or (be - bs == 1 and d[bs] != 0):
        raise MalformedRequest("signature BIT STRING is malformed")
    pos = be
    if pos < se:
        tag = _tlv(d, pos, se, &cs, &ce)
        if tag != 0xA0:
            raise MalformedRequest("unexpected data in Signature")
        tag = _tlv(d, cs, ce, &ls, &le)
        if tag != 0x30 or le != ce:
            raise MalformedRequest("certs is not a SEQUENCE OF Certificate")
        p = ls
        while p < le:
            tag = _tlv(d, p, le, &xs, &xe)
            if tag != 0x30:
                raise MalformedRequest("certificate is not a SEQUENCE")
            _check_tree(d, xs, xe, 2)
            p = xe
        pos = ce
    if pos != se:
        raise MalformedRequest("unexpected data in Signature")
    return 0


def decode_request(bytes data not None):
    """Decode an OCSPRequest; raise MalformedRequest naming the first problem."""
    cdef const unsigned char* d = data
    cdef Py_ssize_t n = len(data)
    cdef Py_ssize_t start, end, ts, te, pos, vs, ve, is_, ie, gs, ge, ns, ne
    cdef Py_ssize_t ls, le, p, rs, re_, cs, ce, xs, xe, ss, se
    cdef int tag
    cdef list cert_ids = []
    cdef object nonce = None
    cdef bint signed = False
    if n == 0:
        raise MalformedRequest("empty request")
    tag = _tlv(d, 0, n, &start, &end)
    if tag != 0x30:
        raise MalformedRequest("OCSPRequest is not a SEQUENCE")
    if end != n:
        raise MalformedRequest("trailing data after OCSPRequest")

    tag = _tlv(d, start, end, &ts, &te)
    if tag != 0x30:
        raise MalformedRequest("tbsRequest is not a SEQUENCE")
    pos = ts
    if pos < te and d[pos] == 0xA0:
        _tlv(d, pos, te, &vs, &ve)
        tag = _tlv(d, vs, ve, &is_, &ie)
        if tag != 0x02 or ie != ve or ie - is_ != 1 or d[is_] != 0:
            raise MalformedRequest("request version is not v1")
        pos = ve
    if pos < te and d[pos] == 0xA1:
        _tlv(d, pos, te, &gs, &ge)
        _tlv(d, gs, ge, &ns, &ne)
        if ne != ge:
            raise MalformedRequest("requestorName is not one GeneralName")
        _check_tree(d, gs, ge, 2)
        pos = ge

    tag = _tlv(d, pos, te, &ls, &le)
    if tag != 0x30:
        raise MalformedRequest("requestList is not a SEQUENCE")
    p = ls
    while p < le:
        if len(cert_ids) == MAX_CERT_IDS:
            raise MalformedRequest("more than 100 CertIDs in one request")
        tag = _tlv(d, p, le, &rs, &re_)
        if tag != 0x30:
            raise MalformedRequest("Request is not a SEQUENCE")
        tag = _tlv(d, rs, re_, &cs, &ce)
        if tag != 0x30:
            raise MalformedRequest("CertID is not a SEQUENCE")
        cert_ids.append(_cert_id(data, d, rs, cs, ce))
        if ce < re_:
            tag = _tlv(d, ce, re_, &xs, &xe)
            if tag != 0xA0 or xe != re_:
                raise MalformedRequest("unexpected data in Request")
            _extensions(data, d, xs, xe, False)
        p = re_
    if not cert_ids:
        raise MalformedRequest("requestList is empty")
    pos = le

    if pos < te and d[pos] == 0xA2:
        _tlv(d, pos, te, &xs, &xe)
        nonce = _extensions(data, d, xs, xe, True)
        pos = xe
    if pos != te:
        raise MalformedRequest("unexpected data in tbsRequest")

    if te < end:
        tag = _tlv(d, te, end, &ss, &se)
        if tag != 0xA0 or se != end:
            raise MalformedRequest("unexpected data after tbsRequest")
        _signature(d, ss, se)
        signed = True
    return OCSPRequest(cert_ids, nonce, signed)
