"""Pure-Python twin of ext/ocsp_response.pyx: OCSP response DER encoder.

The functions take plain values (epoch seconds, pre-encoded CertIDs) and
return DER. Both twins must produce identical bytes for identical arguments;
tests/integration/test_response_differential.py checks that.

Conventions: a negative `reason` omits revocationReason, a negative
`next_update` omits nextUpdate, status 0/1/2 is good/revoked/unknown.
"""

from .der import MAX_TIME, MIN_TIME, OCSP_BASIC, OCSP_NONCE, der_header, generalized_time

# Used by the encoders below (and kept importable from here: the twins' tests read
# the time range of this module).
__all__ = ["MAX_TIME", "MIN_TIME", "der_header", "generalized_time"]


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
        ext = OCSP_NONCE + ext_value
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
    octets = OCSP_BASIC + der_header(0x04, len(basic)) + basic
    response_bytes = der_header(0x30, len(octets)) + octets
    tagged = der_header(0xA0, len(response_bytes)) + response_bytes
    inner = b"\x0a\x01\x00" + tagged
    return der_header(0x30, len(inner)) + inner
