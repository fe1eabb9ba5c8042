"""Pure-Python twin of ext/crl_entries.pyx: DER of CRL entries and of the TBSCertList.

Both twins produce identical bytes for identical arguments (tests/integration/test_crl_entries.py).
Times are Unix seconds. RFC 5280 section 5.1.2.4: UTCTime through 2049, GeneralizedTime
from 2050; invalidityDate is always GeneralizedTime (section 5.3.2). A negative `reason`
or `invalidity` leaves that entry extension out.
"""

from typing import Any

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


def encode_records(records: list[Any]) -> tuple[list[int], list[bytes]]:
    """(serials, entries) for revoked records already in serial order."""
    serials: list[int] = []
    entries: list[bytes] = []
    for record in records:
        if record.revoked_at is None:
            raise ValueError("a revoked record needs its revocation time")
        code = -1 if record.reason is None else int(record.reason)
        if code == 0:  # unspecified: RFC 5280 5.3.1 says leave the extension out
            code = -1
        invalidity = -1 if record.invalidity_date is None else record.invalidity_date
        serials.append(record.serial)
        entries.append(encode_entry(record.serial, record.revoked_at, code, invalidity))
    return serials, entries


def encode_sorted(records: list[Any]) -> tuple[list[int], list[bytes]]:
    """(serials, entries) for revoked records in any order, sorted by serial."""
    # The compiled twin reads every record before it sorts: these checks, in input order
    for record in records:
        if record.serial <= 0 or record.serial.bit_length() > 159:
            raise ValueError("serial must be positive and at most 20 octets")
        if record.revoked_at is None:
            raise ValueError("a revoked record needs its revocation time")
    return encode_records(sorted(records, key=lambda r: r.serial))


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
