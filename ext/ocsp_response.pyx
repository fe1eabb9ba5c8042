# cython: language_level=3
"""Compiled OCSP response DER encoder.

Twin of responder/ocsp/_response_py.py: identical bytes for identical
arguments (tests/test_response_differential.py). Each function computes the
final size first and writes once into a fresh bytes object.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

include "der_helpers.pxi"


cdef const unsigned char* NONCE_OID = <const unsigned char*>b"\x06\x09\x2b\x06\x01\x05\x05\x07\x30\x01\x02"
cdef const unsigned char* BASIC_OID = <const unsigned char*>b"\x06\x09\x2b\x06\x01\x05\x05\x07\x30\x01\x01"


def der_header(int tag, Py_ssize_t length):
    """Tag and definite, minimal length octets."""
    cdef unsigned char buf[6]
    cdef Py_ssize_t n = _hdr_len(length)
    _put_hdr(buf, tag, length)
    return PyBytes_FromStringAndSize(<char*>buf, n)


def generalized_time(long long t):
    """GeneralizedTime TLV, YYYYMMDDHHMMSSZ, no fractions (RFC 5280 section 4.1.2.5.2)."""
    cdef unsigned char buf[17]
    _put_time(buf, t, True)
    return PyBytes_FromStringAndSize(<char*>buf, 17)


def encode_single_response(bytes cert_id not None, int status, long long revoked_at, int reason,
                           long long this_update, long long next_update):
    """SingleResponse DER (RFC 6960 section 4.2.1)."""
    cdef Py_ssize_t cid = len(cert_id)
    cdef Py_ssize_t info = 0, status_len, body, total, p
    cdef bytes out
    cdef unsigned char* o
    if status == 0 or status == 2:
        status_len = 2
    elif status == 1:
        info = 17
        if reason >= 0:
            if reason > 10 or reason == 7:
                raise ValueError("invalid CRLReason")
            info += 5
        status_len = _hdr_len(info) + info
    else:
        raise ValueError("status must be 0 (good), 1 (revoked) or 2 (unknown)")
    body = cid + status_len + 17 + (19 if next_update >= 0 else 0)
    total = _hdr_len(body) + body
    out = PyBytes_FromStringAndSize(NULL, total)
    o = <unsigned char*>PyBytes_AS_STRING(out)
    p = _put_hdr(o, 0x30, body)
    memcpy(o + p, <const char*>cert_id, cid)
    p += cid
    if status == 0:
        o[p] = 0x80
        o[p + 1] = 0
        p += 2
    elif status == 2:
        o[p] = 0x82
        o[p + 1] = 0
        p += 2
    else:
        p += _put_hdr(o + p, 0xA1, info)
        _put_time(o + p, revoked_at, True)
        p += 17
        if reason >= 0:
            o[p] = 0xA0
            o[p + 1] = 3
            o[p + 2] = 0x0A
            o[p + 3] = 1
            o[p + 4] = reason
            p += 5
    _put_time(o + p, this_update, True)
    p += 17
    if next_update >= 0:
        o[p] = 0xA0
        o[p + 1] = 0x11
        _put_time(o + p + 2, next_update, True)
        p += 19
    return out


def encode_response_data(bytes key_hash not None, long long produced_at, list singles not None,
                         object nonce):
    """ResponseData DER: the bytes the responder key signs (ResponderID byKey, v1 omitted)."""
    cdef Py_ssize_t rlen = 0, body, total, p, nlen = 0, v1 = 0, v2 = 0, ext = 0, exts = 0, tagged = 0
    cdef bytes single, out, nonce_b
    cdef unsigned char* o
    if len(key_hash) != 20:
        raise ValueError("ResponderID key hash must be a 20-octet SHA-1")
    if not singles:
        raise ValueError("a response needs at least one SingleResponse")
    for single in singles:
        rlen += len(single)
    body = 24 + 17 + _hdr_len(rlen) + rlen
    if nonce is not None:
        nonce_b = nonce
        nlen = len(nonce_b)
        if nlen < 1 or nlen > 128:
            raise ValueError("nonce must be 1..128 octets")
        v1 = _hdr_len(nlen) + nlen
        v2 = _hdr_len(v1) + v1
        ext = 11 + v2
        exts = _hdr_len(ext) + ext
        tagged = _hdr_len(exts) + exts
        body += _hdr_len(tagged) + tagged
    total = _hdr_len(body) + body
    out = PyBytes_FromStringAndSize(NULL, total)
    o = <unsigned char*>PyBytes_AS_STRING(out)
    p = _put_hdr(o, 0x30, body)
    o[p] = 0xA2
    o[p + 1] = 0x16
    o[p + 2] = 0x04
    o[p + 3] = 0x14
    memcpy(o + p + 4, <const char*>key_hash, 20)
    p += 24
    _put_time(o + p, produced_at, True)
    p += 17
    p += _put_hdr(o + p, 0x30, rlen)
    for single in singles:
        memcpy(o + p, <const char*>single, len(single))
        p += len(single)
    if nonce is not None:
        p += _put_hdr(o + p, 0xA1, tagged)
        p += _put_hdr(o + p, 0x30, exts)
        p += _put_hdr(o + p, 0x30, ext)
        memcpy(o + p, NONCE_OID, 11)
        p += 11
        p += _put_hdr(o + p, 0x04, v1)
        p += _put_hdr(o + p, 0x04, nlen)
        memcpy(o + p, <const char*>nonce_b, nlen)
    return out


def encode_ocsp_response(bytes response_data not None, bytes signature_algorithm not None,
                         bytes signature not None, list certs not None):
    """OCSPResponse (successful) wrapping a BasicOCSPResponse."""
    cdef Py_ssize_t bits = len(signature) + 1, body, cert_total = 0, seq = 0, tagged_certs = 0
    cdef Py_ssize_t basic, octets, rb, tagged, inner, total, p
    cdef bytes cert, out
    cdef unsigned char* o
    body = len(response_data) + len(signature_algorithm) + _hdr_len(bits) + bits
    if certs:
        for cert in certs:
            cert_total += len(cert)
        seq = _hdr_len(cert_total) + cert_total
        tagged_certs = _hdr_len(seq) + seq
        body += tagged_certs
    basic = _hdr_len(body) + body
    octets = 11 + _hdr_len(basic) + basic
    rb = _hdr_len(octets) + octets
    tagged = _hdr_len(rb) + rb
    inner = 3 + tagged
    total = _hdr_len(inner) + inner
    out = PyBytes_FromStringAndSize(NULL, total)
    o = <unsigned char*>PyBytes_AS_STRING(out)
    p = _put_hdr(o, 0x30, inner)
    o[p] = 0x0A
    o[p + 1] = 0x01
    o[p + 2] = 0x00
    p += 3
    p += _put_hdr(o + p, 0xA0, rb)
    p += _put_hdr(o + p, 0x30, octets)
    memcpy(o + p, BASIC_OID, 11)
    p += 11
    p += _put_hdr(o + p, 0x04, basic)
    p += _put_hdr(o + p, 0x30, body)
    memcpy(o + p, <const char*>response_data, len(response_data))
    p += len(response_data)
    memcpy(o + p, <const char*>signature_algorithm, len(signature_algorithm))
    p += len(signature_algorithm)
    p += _put_hdr(o + p, 0x03, bits)
    o[p] = 0
    p += 1
    memcpy(o + p, <const char*>signature, len(signature))
    p += len(signature)
    if certs:
        p += _put_hdr(o + p, 0xA0, seq)
        p += _put_hdr(o + p, 0x30, cert_total)
        for cert in certs:
            memcpy(o + p, <const char*>cert, len(cert))
            p += len(cert)
    return out
