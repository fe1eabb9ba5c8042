# cython: language_level=3
"""Compiled CRL entry and TBSCertList encoder: the hot loop of million-entry CRLs.

Twin of crlgen/_entries_py.py: identical bytes for identical arguments
(tests/test_crl_entries.py runs both on the same inputs).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdlib cimport free, malloc, qsort
from libc.string cimport memcmp
from libc.string cimport memcpy

include "der_helpers.pxi"

cdef const unsigned char* REASON_EXT = <const unsigned char*>b"\x30\x0a\x06\x03\x55\x1d\x15\x04\x03\x0a\x01"
cdef const unsigned char* INVALIDITY_EXT = <const unsigned char*>b"\x30\x18\x06\x03\x55\x1d\x18\x04\x11"


cdef inline Py_ssize_t _time_len(long long t) noexcept:
    return 15 if t < UTC_LIMIT else 17


def der_header(int tag, Py_ssize_t length):
    cdef unsigned char buf[6]
    cdef Py_ssize_t n = _hdr_len(length)
    _put_hdr(buf, tag, length)
    return PyBytes_FromStringAndSize(<char*>buf, n)


def x509_time(long long t):
    cdef unsigned char buf[17]
    cdef Py_ssize_t n
    if t < MIN_TIME or t > MAX_TIME:
        raise ValueError("time outside 1950..9999")
    n = _put_time(buf, t, False)
    return PyBytes_FromStringAndSize(<char*>buf, n)


def generalized_time(long long t):
    cdef unsigned char buf[17]
    if t < MIN_TIME or t > MAX_TIME:
        raise ValueError("time outside 1950..9999")
    _put_time(buf, t, True)
    return PyBytes_FromStringAndSize(<char*>buf, 17)


cdef bytes _entry(const unsigned char* content, Py_ssize_t n, long long revoked_at, int reason,
                  long long invalidity):
    """One entry from the serial's minimal big-endian content octets (n of them)."""
    cdef Py_ssize_t body, exts = 0, total, p
    cdef bytes out
    cdef unsigned char* o
    if revoked_at < MIN_TIME or revoked_at > MAX_TIME:
        raise ValueError("time outside 1950..9999")
    if reason >= 0 and (reason > 10 or reason == 7 or reason == 0):
        raise ValueError("reason code must be 1..10 except 7; unspecified is left out")
    if invalidity >= 0 and invalidity > MAX_TIME:
        raise ValueError("time outside 1950..9999")
    if reason >= 0:
        exts += 12
    if invalidity >= 0:
        exts += 26  # 9-byte prefix + 17-byte GeneralizedTime
    body = 2 + n + _time_len(revoked_at)
    if exts:
        body += 2 + exts
    total = _hdr_len(body) + body
    out = PyBytes_FromStringAndSize(NULL, total)
    o = <unsigned char*>PyBytes_AS_STRING(out)
    p = _put_hdr(o, 0x30, body)
    o[p] = 0x02
    o[p + 1] = n
    memcpy(o + p + 2, content, n)
    p += 2 + n
    p += _put_time(o + p, revoked_at, False)
    if exts:
        p += _put_hdr(o + p, 0x30, exts)
        if reason >= 0:
            memcpy(o + p, REASON_EXT, 11)
            o[p + 11] = reason
            p += 12
        if invalidity >= 0:
            memcpy(o + p, INVALIDITY_EXT, 9)
            p += 9
            p += _put_time(o + p, invalidity, True)
    return out


cpdef bytes encode_entry(object serial, long long revoked_at, int reason, long long invalidity):
    """One revokedCertificates element (RFC 5280 section 5.1.2.6)."""
    cdef Py_ssize_t bits, n
    cdef bytes content
    if serial <= 0:
        raise ValueError("serial must be positive and at most 20 octets")
    bits = serial.bit_length()
    if bits > 159:
        raise ValueError("serial must be positive and at most 20 octets")
    n = (bits + 8) // 8
    content = serial.to_bytes(n, "big")
    return _entry(<const unsigned char*>content, n, revoked_at, reason, invalidity)



def encode_entries(list serials not None, list revoked_at not None, list reasons not None,
                   list invalidity not None):
    cdef Py_ssize_t i, n = len(serials)
    cdef list out
    if len(revoked_at) != n or len(reasons) != n or len(invalidity) != n:
        raise ValueError("zip() argument lengths differ")
    out = [None] * n
    for i in range(n):
        out[i] = encode_entry(serials[i], revoked_at[i], reasons[i], invalidity[i])
    return out


cdef extern from *:
    """
    /* A non-negative int as big-endian octets, without a bytes object in between.
       _PyLong_AsByteArray is CPython's own (int.to_bytes calls it); it gained an
       argument in 3.13, where PyLong_AsNativeBytes would also do. */
    static int revocd_long_octets(PyObject* v, unsigned char* out, size_t n) {
    #if PY_VERSION_HEX >= 0x030D0000
        return _PyLong_AsByteArray((PyLongObject*)v, out, n, 0, 0, 1);
    #else
        return _PyLong_AsByteArray((PyLongObject*)v, out, n, 0, 0);
    #endif
    }
    """
    int revocd_long_octets(object v, unsigned char* out, size_t n) except -1


# A serial as 21 big-endian octets (room for 159 bits and a leading zero), and where
# its record is: memcmp order on `key` is numeric order, so qsort sorts serials in C.
cdef struct Keyed:
    unsigned char key[21]
    Py_ssize_t index
    long long revoked_at
    long long invalidity
    int reason


cdef int _by_key(const void* a, const void* b) noexcept nogil:
    return memcmp((<const Keyed*>a).key, (<const Keyed*>b).key, 21)


def encode_sorted(list records not None):
    """(serials, entries) for revoked records in any order, sorted by serial: one pass
    reads every record's fields into C, the serials are sorted as fixed-width octet
    strings by qsort (memcmp order is numeric order), and the entries are encoded from
    those octets, with no Python object touched but the output."""
    cdef Py_ssize_t i, n = len(records), start
    cdef Keyed* keyed
    cdef Keyed* k
    cdef object record, serial, revoked_at, reason, invalidity
    cdef int code
    cdef list originals = [None] * n
    cdef list serials = [None] * n
    cdef list out = [None] * n
    keyed = <Keyed*>malloc(max(n, 1) * sizeof(Keyed))
    if keyed == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            record = records[i]
            serial = record.serial
            if not isinstance(serial, int):
                raise TypeError("serial must be an int")
            if serial <= 0:
                raise ValueError("serial must be positive and at most 20 octets")
            k = &keyed[i]
            try:
                revocd_long_octets(serial, k.key, 21)
            except OverflowError:
                raise ValueError("serial must be positive and at most 20 octets") from None
            if k.key[0] != 0 or k.key[1] & 0x80:  # more than 159 bits
                raise ValueError("serial must be positive and at most 20 octets")
            k.index = i
            revoked_at = record.revoked_at
            if revoked_at is None:
                raise ValueError("a revoked record needs its revocation time")
            k.revoked_at = revoked_at
            reason = record.reason
            code = -1 if reason is None else reason  # an IntEnum: read as the int it is
            k.reason = -1 if code == 0 else code  # unspecified: RFC 5280 5.3.1, left out
            invalidity = record.invalidity_date
            k.invalidity = -1 if invalidity is None else invalidity
            originals[i] = serial
        with nogil:
            qsort(keyed, n, sizeof(Keyed), _by_key)
        for i in range(n):
            k = &keyed[i]
            # DER INTEGER: minimal octets, a leading zero only before a high bit
            start = 1
            while start < 20 and k.key[start] == 0 and k.key[start + 1] < 0x80:
                start += 1
            serials[i] = originals[k.index]
            out[i] = _entry(k.key + start, 21 - start, k.revoked_at, k.reason, k.invalidity)
    finally:
        free(keyed)
    return serials, out


def encode_records(list records not None):
    """(serials, entries) for revoked records already in serial order: encode_entry of
    each, reading the records' fields here rather than in four list comprehensions."""
    cdef Py_ssize_t i, n = len(records)
    cdef list serials = [None] * n
    cdef list out = [None] * n
    cdef object record, revoked_at, reason, invalidity
    cdef int code
    for i in range(n):
        record = records[i]
        revoked_at = record.revoked_at
        if revoked_at is None:
            raise ValueError("a revoked record needs its revocation time")
        reason = record.reason
        code = -1 if reason is None else int(reason)
        if code == 0:  # unspecified: RFC 5280 5.3.1 says leave the extension out
            code = -1
        invalidity = record.invalidity_date
        serials[i] = record.serial
        out[i] = encode_entry(record.serial, revoked_at, code, -1 if invalidity is None else invalidity)
    return serials, out


def tbs_cert_list(bytes signature_algorithm not None, bytes issuer_name not None,
                  long long this_update, long long next_update, list entries not None,
                  bytes extensions not None):
    """TBSCertList (RFC 5280 section 5.1.2): v2; revokedCertificates left out when empty.

    The entries are copied without the GIL (tens of MB at a million entries), so a
    caller in a worker thread does not hold up the event loop. The list is copied
    first: the bytes it refers to stay alive whatever the caller's list does meanwhile."""
    cdef Py_ssize_t revoked = 0, body, total, p, k, i, n
    cdef bytes entry, out
    cdef unsigned char* o
    cdef const char** sources
    cdef Py_ssize_t* sizes
    cdef list held
    if this_update < MIN_TIME or this_update > MAX_TIME or next_update < MIN_TIME or next_update > MAX_TIME:
        raise ValueError("time outside 1950..9999")
    held = list(entries)
    n = len(held)
    sources = <const char**>malloc(max(n, 1) * sizeof(char*))
    sizes = <Py_ssize_t*>malloc(max(n, 1) * sizeof(Py_ssize_t))
    if sources == NULL or sizes == NULL:
        free(sources)
        free(sizes)
        raise MemoryError()
    try:
        for i in range(n):
            entry = <bytes?>held[i]
            sources[i] = <const char*>entry
            sizes[i] = len(entry)
            revoked += sizes[i]
            if i % 65536 == 65535:
                # Let another thread (the event loop) take the GIL between chunks: this
                # loop over a million entries holds it for about 10 ms otherwise.
                with nogil:
                    pass
        body = 3 + len(signature_algorithm) + len(issuer_name) + _time_len(this_update)
        body += _time_len(next_update)
        if n:
            body += _hdr_len(revoked) + revoked
        if extensions:
            body += _hdr_len(len(extensions)) + len(extensions)
        total = _hdr_len(body) + body
        out = PyBytes_FromStringAndSize(NULL, total)
        o = <unsigned char*>PyBytes_AS_STRING(out)
        p = _put_hdr(o, 0x30, body)
        o[p] = 0x02
        o[p + 1] = 0x01
        o[p + 2] = 0x01
        p += 3
        memcpy(o + p, <const char*>signature_algorithm, len(signature_algorithm))
        p += len(signature_algorithm)
        memcpy(o + p, <const char*>issuer_name, len(issuer_name))
        p += len(issuer_name)
        p += _put_time(o + p, this_update, False)
        p += _put_time(o + p, next_update, False)
        if n:
            p += _put_hdr(o + p, 0x30, revoked)
            with nogil:
                for i in range(n):
                    k = sizes[i]
                    memcpy(o + p, sources[i], k)
                    p += k
        if extensions:
            p += _put_hdr(o + p, 0xA0, len(extensions))
            memcpy(o + p, <const char*>extensions, len(extensions))
    finally:
        free(sources)
        free(sizes)
    return out


def certificate_list(bytes tbs not None, bytes signature_algorithm not None,
                     bytes signature not None):
    cdef Py_ssize_t bits = len(signature) + 1, body, total, p
    cdef bytes out
    cdef unsigned char* o
    body = len(tbs) + len(signature_algorithm) + _hdr_len(bits) + bits
    total = _hdr_len(body) + body
    out = PyBytes_FromStringAndSize(NULL, total)
    o = <unsigned char*>PyBytes_AS_STRING(out)
    p = _put_hdr(o, 0x30, body)
    cdef const char* source = <const char*>tbs
    cdef Py_ssize_t size = len(tbs)
    with nogil:  # tens of MB for a large CRL: without the GIL (see tbs_cert_list)
        memcpy(o + p, source, size)
    p += size
    memcpy(o + p, <const char*>signature_algorithm, len(signature_algorithm))
    p += len(signature_algorithm)
    p += _put_hdr(o + p, 0x03, bits)
    o[p] = 0
    memcpy(o + p + 1, <const char*>signature, len(signature))
    return out
