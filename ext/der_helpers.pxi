# DER building blocks shared by the compiled encoders (included, not imported, so they
# inline). Callers size buffers with _hdr_len first, so _put_hdr never sees a bad length.

cdef long long MIN_TIME = -631152000  # 1950-01-01
cdef long long MAX_TIME = 253402300799LL  # 9999-12-31T23:59:59Z
cdef long long UTC_LIMIT = 2524608000LL  # 2050-01-01: from here a CRL Time is GeneralizedTime


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


cdef inline int _civil(long long t, long long* f) except -1:
    cdef long long days, secs, z, era, doe, yoe, doy, mp, month
    if t < MIN_TIME or t > MAX_TIME:
        raise ValueError("time outside 1950..9999")
    days = t // 86400
    secs = t - days * 86400
    if secs < 0:
        secs += 86400
        days -= 1
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    f[2] = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    f[1] = month
    f[0] = yoe + era * 400 + (1 if month <= 2 else 0)
    f[3] = secs // 3600
    f[4] = (secs // 60) % 60
    f[5] = secs % 60
    return 0


cdef Py_ssize_t _put_time(unsigned char* out, long long t, bint generalized) except -1:
    # RFC 5280 Time: UTCTime before 2050 unless generalized is asked for; returns the TLV length
    cdef long long f[6]
    cdef Py_ssize_t length
    _civil(t, f)
    if not generalized and t < UTC_LIMIT:
        out[0] = 0x17
        out[1] = 13
        _digits(out + 2, f[0] % 100, 2)
        out += 4
        length = 15
    else:
        out[0] = 0x18
        out[1] = 15
        _digits(out + 2, f[0], 4)
        out += 6
        length = 17
    _digits(out, f[1], 2)
    _digits(out + 2, f[2], 2)
    _digits(out + 4, f[3], 2)
    _digits(out + 6, f[4], 2)
    _digits(out + 8, f[5], 2)
    out[10] = 0x5A
    return length
