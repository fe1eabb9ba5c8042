"""CRLs from pre-encoded entries kept sorted per shard, signed through the Signer protocol.

Each revoked certificate is encoded once (serial, revocationDate, reasonCode unless
unspecified, invalidityDate) and kept, sorted by serial, in its shard. Building a CRL is
then one concatenation (in the compiled encoder), one hash and one signature, so software
keys and HSMs both work and a million entries take well under a second to assemble.

RFC 5280 section 5 and BR 7.2: version 2; AKI; CRL Number; Issuing Distribution Point
(critical, with the shard's URI byte for byte as the certificates carry it) on shards;
revokedCertificates left out when empty.
"""

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from responder.ocsp.certid import encode_integer, subject_public_key_bits
from responder.ocsp.types import RevocationReason
from responder.signing import Signer
from responder.store import CertRecord

from .fast import entries_codec

_AKI_OID = bytes.fromhex("0603551d23")
_CRL_NUMBER_OID = bytes.fromhex("0603551d14")
_IDP_OID = bytes.fromhex("0603551d1c")
MAX_CRL_NUMBER = (1 << 159) - 1  # RFC 5280 section 5.2.3: at most 20 octets
# Shards this large are assembled in a worker thread (a few milliseconds of copying);
# smaller ones are not worth the hand-off.
THREAD_ENTRIES = 10_000


def _tlv(tag: int, content: bytes) -> bytes:
    header: bytes = entries_codec.der_header(tag, len(content))
    return header + content


def _extension(oid: bytes, value: bytes, critical: bool = False) -> bytes:
    return _tlv(0x30, oid + (b"\x01\x01\xff" if critical else b"") + _tlv(0x04, value))


def authority_key_id(issuer: x509.Certificate) -> bytes:
    """The issuer's subjectKeyIdentifier, or the RFC 5280 method-1 hash of its key."""
    try:
        return issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return hashlib.sha1(subject_public_key_bits(issuer)).digest()


def idp_value(uri: str, only_user_certs: bool = True) -> bytes:
    """IssuingDistributionPoint with distributionPoint fullName [URI] (RFC 5280 5.2.5)."""
    full_name = _tlv(0xA0, _tlv(0x86, uri.encode("ascii")))  # fullName [0] GeneralNames
    value = _tlv(0xA0, full_name)  # distributionPoint [0] (a CHOICE: explicit)
    if only_user_certs:
        value += b"\x81\x01\xff"
    return _tlv(0x30, value)


def crl_extensions(aki: bytes, number: int, idp_uri: str | None) -> bytes:
    if not 0 <= number <= MAX_CRL_NUMBER:
        raise ValueError("CRL number must be a non-negative integer of at most 20 octets")
    exts = _extension(_AKI_OID, _tlv(0x30, _tlv(0x80, aki)))
    exts += _extension(_CRL_NUMBER_OID, encode_integer(number))
    if idp_uri is not None:
        exts += _extension(_IDP_OID, idp_value(idp_uri), critical=True)
    return _tlv(0x30, exts)


def entry_args(record: CertRecord) -> tuple[int, int, int, int]:
    assert record.revoked_at is not None
    reason = -1
    if record.reason is not None and record.reason is not RevocationReason.UNSPECIFIED:
        reason = int(record.reason)
    invalidity = record.invalidity_date if record.invalidity_date is not None else -1
    return record.serial, record.revoked_at, reason, invalidity


@dataclass
class Shard:
    """The pre-encoded, serial-sorted entries of one CRL."""

    serials: list[int] = field(default_factory=list)
    entries: list[bytes] = field(default_factory=list)

    @classmethod
    def from_records(cls, records: Iterable[CertRecord]) -> "Shard":
        serials, entries = entries_codec.encode_sorted(list(records))
        return cls(serials, entries)

    def __len__(self) -> int:
        return len(self.serials)

    def upsert(self, record: CertRecord) -> None:
        """Add or replace one entry (a revocation, a reason change): O(log n) to find it."""
        entry = entries_codec.encode_entry(*entry_args(record))
        i = bisect.bisect_left(self.serials, record.serial)
        if i < len(self.serials) and self.serials[i] == record.serial:
            self.entries[i] = entry
        else:
            self.serials.insert(i, record.serial)
            self.entries.insert(i, entry)

    def __contains__(self, serial: object) -> bool:
        if not isinstance(serial, int):
            return False
        i = bisect.bisect_left(self.serials, serial)
        return i < len(self.serials) and self.serials[i] == serial

    def remove(self, serial: int) -> bool:
        i = bisect.bisect_left(self.serials, serial)
        if i < len(self.serials) and self.serials[i] == serial:
            del self.serials[i]
            del self.entries[i]
            return True
        return False


@dataclass(frozen=True)
class CrlIssuer:
    """What every CRL of one issuer shares."""

    certificate: x509.Certificate
    signer: Signer
    name_der: bytes = field(init=False)
    aki: bytes = field(init=False)

    def __post_init__(self) -> None:
        spki = self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if self.signer.public_key_info != spki:
            raise ValueError("the CRL signer's key is not the issuer certificate's key")
        object.__setattr__(self, "name_der", self.certificate.subject.public_bytes())
        object.__setattr__(self, "aki", authority_key_id(self.certificate))


async def build_crl(
    issuer: CrlIssuer,
    shard: Shard,
    number: int,
    this_update: int,
    next_update: int,
    idp_uri: str | None = None,
) -> bytes:
    """DER of a signed CRL for the shard (a full CRL when idp_uri is None).

    A large shard is assembled in a worker thread, so the copy of tens of megabytes is
    not the data plane's wait; the signer hashes it off the loop too (signing/)."""
    if next_update <= this_update:
        raise ValueError("nextUpdate must be after thisUpdate")
    algorithm = issuer.signer.signature_algorithm
    # The compiled encoder copies the list before it lets go of the GIL; the pure twin
    # joins it in one call that holds the GIL. Either way the loop may change the
    # shard meanwhile without touching what is encoded.
    entries = shard.entries
    extensions = crl_extensions(issuer.aki, number, idp_uri)
    args = (algorithm, issuer.name_der, this_update, next_update, entries, extensions)
    if len(entries) < THREAD_ENTRIES:
        tbs: bytes = entries_codec.tbs_cert_list(*args)
        signature = await issuer.signer.sign(tbs)
        small: bytes = entries_codec.certificate_list(tbs, algorithm, signature)
        return small
    tbs = await trio.to_thread.run_sync(entries_codec.tbs_cert_list, *args)
    signature = await issuer.signer.sign(tbs)
    crl: bytes = await trio.to_thread.run_sync(
        entries_codec.certificate_list, tbs, algorithm, signature
    )
    return crl
