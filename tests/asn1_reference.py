"""Reference OCSPRequest decoder for the differential tests, built on asn1crypto.

asn1crypto is lenient in places DER is not (it accepts indefinite and
non-minimal lengths), so acceptance is: an independent DER well-formedness
walk, then asn1crypto's parse of every field revocd interprets, then the
semantic limits of revocd's contract (see responder/ocsp/_request_py.py).
Parts revocd deliberately ignores (requestorName, request-signature
certificates) are checked only for DER well-formedness, as the contract says.
"""

from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp

HASHES = {"sha1": (0, 20), "sha256": (1, 32), "sha384": (2, 48), "sha512": (3, 64)}
UNDERSTOOD = {"1.3.6.1.5.5.7.48.1.2", "1.3.6.1.5.5.7.48.1.4", "1.3.6.1.5.5.7.48.1.8"}


class Rejected(Exception):
    pass


class GenericExtension(core.Sequence):
    """Extension with an uninterpreted value: revocd reads only the nonce's."""

    _fields = [  # noqa: RUF012
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class GenericExtensions(core.SequenceOf):
    _child_spec = GenericExtension


def _generic(tagged) -> GenericExtensions:
    contents = tagged.contents
    return GenericExtensions.load(b"\x30" + _len(len(contents)) + contents, strict=True)


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _walk(data: bytes, pos: int, end: int) -> None:
    while pos < end:
        if end - pos < 2:
            raise Rejected("truncated header")
        tag, first = data[pos], data[pos + 1]
        if tag & 0x1F == 0x1F:
            raise Rejected("high tag")
        if first == 0x80:
            raise Rejected("indefinite")
        if first < 0x80:
            hdr, n = 2, first
        else:
            k = first & 0x7F
            if k > 4 or pos + 2 + k > end:
                raise Rejected("bad length octets")
            n = int.from_bytes(data[pos + 2 : pos + 2 + k], "big")
            if data[pos + 2] == 0 or n < 0x80:
                raise Rejected("non-minimal length")
            hdr = 2 + k
        if pos + hdr + n > end:
            raise Rejected("overrun")
        if tag & 0x20:
            _walk(data, pos + hdr, pos + hdr + n)
        pos += hdr + n


def _explicit_tags_constructed(seq) -> None:
    """asn1crypto accepts a primitive encoding of an EXPLICIT tag; DER does not (X.690 8.14)."""
    data = seq.contents or b""
    pos = 0
    while pos < len(data):
        tag, first = data[pos], data[pos + 1]
        if tag & 0xC0 == 0x80 and not tag & 0x20:
            raise Rejected("explicit tag in primitive form")
        if first < 0x80:
            hdr, n = 2, first
        else:
            k = first & 0x7F
            hdr, n = 2 + k, int.from_bytes(data[pos + 2 : pos + 2 + k], "big")
        pos += hdr + n


def _tlv_end(data: bytes, pos: int) -> int:
    first = data[pos + 1]
    if first < 0x80:
        return pos + 2 + first
    k = first & 0x7F
    return pos + 2 + k + int.from_bytes(data[pos + 2 : pos + 2 + k], "big")


def _one_requestor_name(tbs: bytes) -> None:
    """requestorName is [1] EXPLICIT GeneralName: exactly one element inside the tag.
    asn1crypto parses the first and keeps quiet about any after it."""
    pos = _tlv_end(tbs, 0) if tbs[:1] == b"\xa0" else 0
    if tbs[pos : pos + 1] != b"\xa1":
        return
    end = _tlv_end(tbs, pos)
    inner = pos + (2 if tbs[pos + 1] < 0x80 else 2 + (tbs[pos + 1] & 0x7F))
    if inner >= end or _tlv_end(tbs, inner) != end:
        raise Rejected("requestorName is not one GeneralName")


def _fields_only(seq) -> None:
    """asn1crypto keeps unmatched trailing children instead of rejecting them; DER does not."""
    seq[seq._fields[0][0]]  # forces the children to be parsed
    if len(seq.children) > len(seq._fields):
        raise Rejected(f"unexpected element in {type(seq).__name__}")
    _explicit_tags_constructed(seq)


def _oid_ok(oid: core.ObjectIdentifier) -> None:
    dotted = oid.dotted
    if core.ObjectIdentifier(dotted).contents != oid.contents:
        raise Rejected("OID not canonical")


def _extensions(exts, request_level: bool) -> bytes | None:
    seen = set()
    nonce = None
    for ext in exts:
        _fields_only(ext)
        _oid_ok(ext["extn_id"])
        oid = ext["extn_id"].dotted
        if oid in seen:
            raise Rejected("duplicate extension")
        seen.add(oid)
        critical_raw = ext["critical"].contents
        if critical_raw is not None and critical_raw not in (b"\x00", b"\xff"):
            raise Rejected("BOOLEAN not DER")
        critical = bool(ext["critical"].native)
        value = ext["extn_value"]
        if (value.class_, value.method, value.tag) != (0, 0, 4):
            raise Rejected("extnValue")
        if request_level and oid == "1.3.6.1.5.5.7.48.1.2":
            inner = core.OctetString.load(value.contents, strict=True)
            n = len(inner.native)
            if not 1 <= n <= 128:
                raise Rejected("nonce length")
            nonce = inner.native
        elif critical and oid not in UNDERSTOOD:
            raise Rejected("critical")
    return nonce


def reference_decode(data: bytes):
    """(cert ids as tuples, nonce, signed), or raise Rejected."""
    if not data:
        raise Rejected("empty")
    _walk(data, 0, len(data))
    try:
        req = asn1_ocsp.OCSPRequest.load(data, strict=True)
        tbs = req["tbs_request"]
        _fields_only(req)
        _fields_only(tbs)
        _one_requestor_name(tbs.contents or b"")
        if tbs["version"].native != "v1":
            raise Rejected("version")
        request_list = tbs["request_list"]
        if len(request_list) == 0 or len(request_list) > 100:
            raise Rejected("count")
        cert_ids = []
        for item in request_list:
            cid = item["req_cert"]
            alg = cid["hash_algorithm"]
            _fields_only(item)
            _fields_only(cid)
            _oid_ok(alg["algorithm"])
            name = alg["algorithm"].native
            if name not in HASHES:
                raise Rejected("hash alg")
            params = alg.contents[len(alg["algorithm"].dump()) :]
            if params not in (b"", b"\x05\x00"):
                raise Rejected("params")
            code, size = HASHES[name]
            nh, kh = cid["issuer_name_hash"].native, cid["issuer_key_hash"].native
            if len(nh) != size or len(kh) != size:
                raise Rejected("hash size")
            serial = cid["serial_number"]
            raw = serial.contents
            if not raw or len(raw) > 32:
                raise Rejected("serial size")
            if len(raw) > 1 and (
                (raw[0] == 0 and raw[1] < 0x80) or (raw[0] == 0xFF and raw[1] >= 0x80)
            ):
                raise Rejected("serial not minimal")
            if not isinstance(item["single_request_extensions"], core.Void):
                _extensions(_generic(item["single_request_extensions"]), False)
            cert_ids.append((code, nh, kh, serial.native, cid.dump()))
        nonce = None
        if not isinstance(tbs["request_extensions"], core.Void):
            nonce = _extensions(_generic(tbs["request_extensions"]), True)
        signed = False
        sig = req["optional_signature"]
        if sig.contents is not None and sig.contents != b"":
            signed = True
            _fields_only(sig)
            _fields_only(sig["signature_algorithm"])
            _oid_ok(sig["signature_algorithm"]["algorithm"])
            bits = sig["signature"].contents
            if not bits or bits[0] > 7 or (len(bits) == 1 and bits[0] != 0):
                raise Rejected("bit string")
            certs = sig["certs"]
            if certs.contents:
                for raw_cert in _children(certs):
                    if raw_cert[0] != 0x30:
                        raise Rejected("cert tag")
        return cert_ids, nonce, signed
    except Rejected:
        raise
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise Rejected(f"asn1crypto: {exc}") from exc


def _children(seq) -> list[bytes]:
    """Raw child TLVs of a SEQUENCE OF, without asn1crypto parsing them."""
    out = []
    data = seq.contents
    pos = 0
    while pos < len(data):
        first = data[pos + 1]
        if first < 0x80:
            hdr, n = 2, first
        else:
            k = first & 0x7F
            hdr, n = 2 + k, int.from_bytes(data[pos + 2 : pos + 2 + k], "big")
        out.append(data[pos : pos + hdr + n])
        pos += hdr + n
    return out
