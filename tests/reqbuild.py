"""Independent DER builder for OCSP requests in tests: valid, odd and hostile ones.

Deliberately separate from responder.ocsp so that tests do not check the
decoder against the encoder's own mistakes.
"""

SHA1 = bytes.fromhex("06052b0e03021a")
SHA256 = bytes.fromhex("0609608648016503040201")
SHA384 = bytes.fromhex("0609608648016503040202")
SHA512 = bytes.fromhex("0609608648016503040203")
MD5 = bytes.fromhex("06082a864886f70d0205")
NONCE_OID = bytes.fromhex("06092b0601050507300102")
NULL = b"\x05\x00"
SIZES = {SHA1: 20, SHA256: 32, SHA384: 48, SHA512: 64, MD5: 16}


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + length(len(content)) + content


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def integer(value: int) -> bytes:
    n = ((value if value >= 0 else ~value).bit_length() + 8) // 8
    return tlv(0x02, value.to_bytes(n, "big", signed=True))


def cert_id(
    alg: bytes = SHA1,
    params: bytes | None = NULL,
    name_hash: bytes | None = None,
    key_hash: bytes | None = None,
    serial: bytes = b"\x02\x01\x01",
    extra: bytes = b"",
) -> bytes:
    size = SIZES.get(alg, 20)
    name_hash = b"\x11" * size if name_hash is None else name_hash
    key_hash = b"\x22" * size if key_hash is None else key_hash
    algo = seq(alg + (params or b""))
    return seq(algo, tlv(0x04, name_hash), tlv(0x04, key_hash), serial, extra)


def extension(oid: bytes, value: bytes, critical: bytes | None = None) -> bytes:
    return seq(oid, critical or b"", tlv(0x04, value))


def nonce_ext(nonce: bytes) -> bytes:
    return extension(NONCE_OID, tlv(0x04, nonce))


def request(
    cert_ids: list[bytes] | None = None,
    extensions: list[bytes] | None = None,
    version: bytes | None = None,
    requestor: bytes | None = None,
    single_extensions: list[bytes] | None = None,
    signature: bytes | None = None,
    tbs_extra: bytes = b"",
) -> bytes:
    ids = [cert_id()] if cert_ids is None else cert_ids
    reqs = []
    for cid in ids:
        if single_extensions is not None:
            reqs.append(seq(cid, tlv(0xA0, seq(*single_extensions))))
        else:
            reqs.append(seq(cid))
    tbs = b""
    if version is not None:
        tbs += tlv(0xA0, version)
    if requestor is not None:
        tbs += tlv(0xA1, requestor)
    tbs += seq(*reqs)
    if extensions is not None:
        tbs += tlv(0xA2, seq(*extensions))
    tbs += tbs_extra
    body = seq(tbs)
    if signature is not None:
        body += tlv(0xA0, signature)
    return tlv(0x30, body)


def signature(certs: list[bytes] | None = None, bits: bytes = b"\x03\x03\x00\xab\xcd") -> bytes:
    alg = seq(bytes.fromhex("06082a8648ce3d040302"))
    parts = alg + bits
    if certs is not None:
        parts += tlv(0xA0, seq(*certs))
    return seq(parts)
