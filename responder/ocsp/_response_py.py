"""Pure-Python twin of ext/ocsp_response.pyx: OCSP response DER encoder.

The functions take plain values (epoch seconds, pre-encoded CertIDs) and
return DER. Both twins must produce identical bytes for identical arguments;
tests/integration/test_response_differential.py checks that.

Conventions: a negative `reason` omits revocationReason, a negative
`next_update` omits nextUpdate, status 0/1/2 is good/revoked/unknown.
"""

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


def encode_single_response(
    cert_id: bytes, status: int, revoked_at: int, reason: int, this_update: int, next_update: int
) -> bytes:
    """SingleResponse DER (RFC 6960 section 4.2.1)."""
    if status == 0:
        cert_status = b"\x80\x00"
    elif status == 1:
        info = generalized_time(revoked_at)
        if reason >= 0:
            if reason > 10 or reason == 7:
                raise ValueError("invalid CRLReason")
            info += b"\xa0\x03\x0a\x01" + bytes((reason,))
        cert_status = der_header(0xA1, len(info)) + info
    elif status == 2:
        cert_status = b"\x82\x00"
    else:
        raise ValueError("status must be 0 (good), 1 (revoked) or 2 (unknown)")
    body = cert_id + cert_status + generalized_time(this_update)
    if next_update >= 0:
        body += b"\xa0\x11" + generalized_time(next_update)
    return der_header(0x30, len(body)) + body


def encode_response_data(
    key_hash: bytes, produced_at: int, singles: list[bytes], nonce: bytes | None
) -> bytes:
    """ResponseData DER: the bytes the responder key signs.

    ResponderID is byKey (RFC 6960 section 4.2.2.3); version is v1 and so
    omitted (DER leaves DEFAULT values out).
    """
    if len(key_hash) != 20:
        raise ValueError("ResponderID key hash must be a 20-octet SHA-1")
    if not singles:
        raise ValueError("a response needs at least one SingleResponse")
    responses = b"".join(singles)
    body = (
        b"\xa2\x16\x04\x14"
        + key_hash
        + generalized_time(produced_at)
        + der_header(0x30, len(responses))
        + responses
    )
    if nonce is not None:
        if not 1 <= len(nonce) <= 128:
            raise ValueError("nonce must be 1..128 octets")
        value = der_header(0x04, len(nonce)) + nonce
        ext_value = der_header(0x04, len(value)) + value
        ext = _NONCE_OID + ext_value
        ext = der_header(0x30, len(ext)) + ext
        exts = der_header(0x30, len(ext)) + ext
        body += der_header(0xA1, len(exts)) + exts
    return der_header(0x30, len(body)) + body


def encode_ocsp_response(
    response_data: bytes, signature_algorithm: bytes, signature: bytes, certs: list[bytes]
) -> bytes:
    """OCSPResponse (successful) wrapping a BasicOCSPResponse.

    `signature_algorithm` is a complete AlgorithmIdentifier; `certs` are DER
    certificates to embed (the delegated responder certificate, or none).
    """
    bits = b"\x00" + signature
    body = response_data + signature_algorithm + der_header(0x03, len(bits)) + bits
    if certs:
        seq = b"".join(certs)
        seq = der_header(0x30, len(seq)) + seq
        body += der_header(0xA0, len(seq)) + seq
    basic = der_header(0x30, len(body)) + body
    octets = _BASIC_OID + der_header(0x04, len(basic)) + basic
    response_bytes = der_header(0x30, len(octets)) + octets
    tagged = der_header(0xA0, len(response_bytes)) + response_bytes
    inner = b"\x0a\x01\x00" + tagged
    return der_header(0x30, len(inner)) + inner
