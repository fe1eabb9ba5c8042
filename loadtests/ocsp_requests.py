"""OCSP requests (RFC 6960 section 4.1.1) for the load tools: one CertID, optional nonce.

revocd itself only decodes requests, so the benchmarks and the locustfile build theirs here.
"""

import base64

NONCE_OID = bytes.fromhex("06092b0601050507300102")  # id-pkix-ocsp-nonce


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(raw))) + raw + content


def ocsp_request(cert_id: bytes, nonce: bytes | None = None) -> bytes:
    """OCSPRequest DER for one encoded CertID; the nonce goes in requestExtensions."""
    tbs = tlv(0x30, tlv(0x30, cert_id))
    if nonce is not None:
        ext = tlv(0x30, NONCE_OID + tlv(0x04, tlv(0x04, nonce)))
        tbs += tlv(0xA2, tlv(0x30, ext))
    return tlv(0x30, tlv(0x30, tbs))


def get_path(der: bytes) -> str:
    """The GET form of a request: base64url of the DER, padding left out."""
    return "/" + base64.urlsafe_b64encode(der).decode().rstrip("=")
