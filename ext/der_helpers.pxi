# DER building blocks shared by the compiled encoders (included, not imported, so they
# inline). Callers size buffers with _hdr_len first, so _put_hdr never sees a bad length.

cdef long long MIN_TIME = -631152000  # 1950-01-01
cdef long long MAX_TIME = 253402300799LL  # 9999-12-31T23:59:59Z


cdef inline Py_ssize_t _hdr_len(Py_ssize_t length) except -1:
    if length < 0x80:
        return 2
    if length < 0x100:
        return 3
    if length < 0x10000:
        return 4
    if length < 0x1000000:
        return 5
    if length < 0x100000000:
        return 6
    raise ValueError("DER element too long")


cdef inline Py_ssize_t _put_hdr(unsigned char* out, int tag, Py_ssize_t length) noexcept:
    cdef Py_ssize_t n = 1, i
    out[0] = tag
    if length < 0x80:
        out[1] = <unsigned char>length
        return 2
    while n < 4 and (length >> (8 * n)) != 0:
        n += 1
    out[1] = 0x80 | n
    for i in range(n):
        out[2 + i] = (length >> (8 * (n - 1 - i))) & 0xFF
    return 2 + n


cdef inline void _digits(unsigned char* out, long long value, int width) noexcept:
    cdef int i
    for i in range(width - 1, -1, -1):
        out[i] = 48 + value % 10
        value //= 10
