"""DER primitives, times and object identifiers shared by the OCSP codec and the CRL
builder: the one place they are written (each Cython twin in ext/ has its own copy,
which the differential tests hold to these bytes)."""

from .types import HashAlgorithm

# Seconds from 0001-01-01 to 9999-12-31T23:59:59, the span GeneralizedTime
# with four-digit years can carry; revocd only needs 1950..9999.
MIN_TIME = -631152000  # 1950-01-01T00:00:00Z
MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z

_NONCE_OID = bytes.fromhex("06092b0601050507300102")
_BASIC_OID = bytes.fromhex("06092b0601050507300101")


def der_header(tag: int, length: int) -> bytes:
    """Tag and definite, minimal length octets."""
    if length < 0x80:
        return bytes((tag, length))
    if length < 0x100:
        return bytes((tag, 0x81, length))
    if length < 0x10000:
        return bytes((tag, 0x82, length >> 8, length & 0xFF))
    if length < 0x1000000:
        return bytes((tag, 0x83, length >> 16, (length >> 8) & 0xFF, length & 0xFF))
    if length < 0x100000000:
        return bytes(
            (tag, 0x84, length >> 24, (length >> 16) & 0xFF, (length >> 8) & 0xFF, length & 0xFF)
        )
    raise ValueError("DER element too long")


def civil(t: int) -> tuple[int, int, int, int, int, int]:
    """Year, month, day, hour, minute, second of Unix time t (proleptic Gregorian, era
    arithmetic; floor division keeps it right before 1970 too)."""
    days, secs = divmod(t, 86400)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day, secs // 3600, (secs // 60) % 60, secs % 60


def generalized_time(t: int) -> bytes:
    """GeneralizedTime TLV, YYYYMMDDHHMMSSZ, no fractions (RFC 5280 section 4.1.2.5.2)."""
    if t < MIN_TIME or t > MAX_TIME:
        raise ValueError("time outside 1950..9999")
    return b"\x18\x0f" + b"%04d%02d%02d%02d%02d%02dZ" % civil(t)


UTC_LIMIT = 2524608000  # 2050-01-01: from here RFC 5280 times are GeneralizedTime


def x509_time(t: int) -> bytes:
    """Time (RFC 5280 section 4.1.2.5): UTCTime through 2049, GeneralizedTime after."""
    if t < MIN_TIME or t > MAX_TIME:
        raise ValueError("time outside 1950..9999")
    year, month, day, hour, minute, second = civil(t)
    if t < UTC_LIMIT:
        return b"\x17\x0d" + b"%02d%02d%02d%02d%02d%02dZ" % (
            year % 100,
            month,
            day,
            hour,
            minute,
            second,
        )
    return b"\x18\x0f" + b"%04d%02d%02d%02d%02d%02dZ" % (year, month, day, hour, minute, second)


# DER (tag, length, content) of the object identifiers revocd writes or matches.
# Hash algorithms allowed in a CertID.
SHA1 = bytes.fromhex("06052b0e03021a")  # 1.3.14.3.2.26
SHA256 = bytes.fromhex("0609608648016503040201")  # 2.16.840.1.101.3.4.2.1
SHA384 = bytes.fromhex("0609608648016503040202")  # 2.16.840.1.101.3.4.2.2
SHA512 = bytes.fromhex("0609608648016503040203")  # 2.16.840.1.101.3.4.2.3

HASH_OIDS: dict[HashAlgorithm, bytes] = {
    HashAlgorithm.SHA1: SHA1,
    HashAlgorithm.SHA256: SHA256,
    HashAlgorithm.SHA384: SHA384,
    HashAlgorithm.SHA512: SHA512,
}

OCSP_BASIC = bytes.fromhex("06092b0601050507300101")  # id-pkix-ocsp-basic 1.3.6.1.5.5.7.48.1.1
OCSP_NONCE = bytes.fromhex("06092b0601050507300102")  # id-pkix-ocsp-nonce 1.3.6.1.5.5.7.48.1.2
CRL_REASON = bytes.fromhex("0603551d15")  # id-ce-cRLReasons 2.5.29.21
INVALIDITY_DATE = bytes.fromhex("0603551d18")  # id-ce-invalidityDate 2.5.29.24
