"""Pure-Python twin of ext/crl_entries.pyx: DER of CRL entries and of the TBSCertList.

Both twins produce identical bytes for identical arguments (tests/integration/test_crl_entries.py).
Times are Unix seconds. RFC 5280 section 5.1.2.4: UTCTime through 2049, GeneralizedTime
from 2050; invalidityDate is always GeneralizedTime (section 5.3.2). A negative `reason`
or `invalidity` leaves that entry extension out.
"""

from responder.ocsp.der import CRL_REASON, INVALIDITY_DATE, der_header, generalized_time, x509_time


def encode_entry(serial: int, revoked_at: int, reason: int, invalidity: int) -> bytes:
    """One revokedCertificates element (RFC 5280 section 5.1.2.6)."""
    if serial <= 0 or serial.bit_length() > 159:
        raise ValueError("serial must be positive and at most 20 octets")
    content = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
    body = der_header(0x02, len(content)) + content + x509_time(revoked_at)
    exts = b""
    if reason >= 0:
        if reason > 10 or reason == 7 or reason == 0:
            raise ValueError("reason code must be 1..10 except 7; unspecified is left out")
        exts += b"\x30\x0a" + CRL_REASON + b"\x04\x03\x0a\x01" + bytes((reason,))
    if invalidity >= 0:
        exts += b"\x30\x18" + INVALIDITY_DATE + b"\x04\x11" + generalized_time(invalidity)
    if exts:
        body += der_header(0x30, len(exts)) + exts
    return der_header(0x30, len(body)) + body


def encode_entries(
    serials: list[int], revoked_at: list[int], reasons: list[int], invalidity: list[int]
) -> list[bytes]:
    return [
        encode_entry(s, r, c, i)
        for s, r, c, i in zip(serials, revoked_at, reasons, invalidity, strict=True)
    ]


def tbs_cert_list(
    signature_algorithm: bytes,
    issuer_name: bytes,
    this_update: int,
    next_update: int,
    entries: list[bytes],
    extensions: bytes,
) -> bytes:
    """TBSCertList (RFC 5280 section 5.1.2): v2; revokedCertificates left out when empty."""
    revoked = b"".join(entries)
    body = b"\x02\x01\x01" + signature_algorithm + issuer_name + x509_time(this_update)
    body += x509_time(next_update)
    if entries:
        body += der_header(0x30, len(revoked)) + revoked
    if extensions:
        body += der_header(0xA0, len(extensions)) + extensions
    return der_header(0x30, len(body)) + body


def certificate_list(tbs: bytes, signature_algorithm: bytes, signature: bytes) -> bytes:
    bits = b"\x00" + signature
    body = tbs + signature_algorithm + der_header(0x03, len(bits)) + bits
    return der_header(0x30, len(body)) + body
