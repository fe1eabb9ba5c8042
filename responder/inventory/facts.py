"""What revocd knows about an issued certificate beyond its status: the inventory facts.

An `issued` event may carry the certificate itself (PEM or base64 DER) or the facts
given directly. From a certificate revocd derives the serial, validity, subject,
subjectAltNames, the subject key identifier and the SHA-256 of the
SubjectPublicKeyInfo, and refuses it unless the issuer's key verifies its signature: a
certificate the issuer did not sign has no place in the issuer's inventory, and would
let anyone attach a key hash to someone else's serial.

The SPKI hash is the key's identity for the key-compromise cascade (inventory/cascade.py):
two certificates for one key have the same SubjectPublicKeyInfo whatever else differs,
which is the match Boulder's bad-key-revoker and the BR's "same key" rule need. The
subject key identifier is kept for people (it is what `openssl x509 -text` shows) but
not trusted as an identity: RFC 5280 4.2.1.2 lets a CA compute it any way it likes.

Pure: bytes and values in, values out (ingest.py calls it; the store keeps the JSON).
"""

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from ..domain.facts import CertFacts

__all__ = [
    "CertFacts",
    "Derived",
    "FactsError",
    "certificate_event_fields",
    "derive",
    "given_facts",
    "key_hash",
    "label",
    "load_certificate",
    "spki_sha256",
]

# A certificate is at most this large, as PEM or DER (the largest real leaves, with
# hundreds of SANs, are ~30 KB; a cap keeps one event from costing a parse of megabytes).
MAX_CERTIFICATE_BYTES = 64 * 1024
MAX_LABEL = 128  # owner and profile
MAX_SANS = 1000
MAX_SUBJECT = 1024
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX = re.compile(r"^[0-9a-f]+$")


class FactsError(ValueError):
    """A field of an `issued` event that cannot be used; str() starts with the field."""


@dataclass(frozen=True, slots=True)
class Derived:
    """What a certificate states, for checking against the event's own fields."""

    serial: int
    not_after: int
    facts: CertFacts


def spki_sha256(certificate: x509.Certificate) -> str:
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def load_certificate(value: Any) -> x509.Certificate:
    """A certificate from an event's `certificate` field: PEM text or base64 DER."""
    if not isinstance(value, str):
        raise FactsError("certificate: expected PEM text or base64 DER")
    if len(value) > MAX_CERTIFICATE_BYTES:
        raise FactsError(f"certificate: larger than {MAX_CERTIFICATE_BYTES} bytes")
    try:
        if "-----BEGIN" in value:
            certs = x509.load_pem_x509_certificates(value.encode())
            if len(certs) != 1:
                raise FactsError(f"certificate: one certificate expected, got {len(certs)}")
            return certs[0]
        der = base64.b64decode(value, validate=True)
        return x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError) as exc:
        if isinstance(exc, FactsError):
            raise
        raise FactsError(f"certificate: not a PEM or base64 DER certificate ({exc})") from None


def _sans(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    out: list[str] = []
    for name in ext.value:
        if isinstance(name, x509.DNSName):
            out.append(f"dns:{name.value}")
        elif isinstance(name, x509.IPAddress):
            out.append(f"ip:{name.value}")
        elif isinstance(name, x509.RFC822Name):
            out.append(f"email:{name.value}")
        elif isinstance(name, x509.UniformResourceIdentifier):
            out.append(f"uri:{name.value}")
        else:
            out.append(f"{type(name).__name__}")
    return tuple(out[:MAX_SANS])


def _key_id(certificate: x509.Certificate) -> str | None:
    try:
        ext = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return ext.value.digest.hex()


def derive(certificate: x509.Certificate, issuer: x509.Certificate) -> Derived:
    """The facts a certificate states, once its issuer's key has verified it."""
    if certificate.issuer != issuer.subject:
        raise FactsError(
            "certificate: its issuer name is not the subject of this issuer's certificate"
        )
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise FactsError("certificate: the issuer's key does not verify its signature") from None
    der = certificate.public_bytes(serialization.Encoding.DER)
    return Derived(
        serial=certificate.serial_number,
        not_after=int(certificate.not_valid_after_utc.timestamp()),
        facts=CertFacts(
            not_before=int(certificate.not_valid_before_utc.timestamp()),
            subject=certificate.subject.rfc4514_string()[:MAX_SUBJECT],
            sans=_sans(certificate),
            key_id=_key_id(certificate),
            spki_sha256=spki_sha256(certificate),
            fingerprint=hashlib.sha256(der).hexdigest(),
        ),
    )


def label(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise FactsError(f"{name}: expected a non-empty string")
    if len(value) > MAX_LABEL or not _LABEL.match(value):
        raise FactsError(
            f"{name}: at most {MAX_LABEL} characters of letters, digits and ._:/@+- "
            "(starting with a letter or digit)"
        )
    return value


def key_hash(value: Any, name: str = "spki_sha256") -> str:
    """A SubjectPublicKeyInfo SHA-256 as 64 lowercase hex digits."""
    if not isinstance(value, str) or not _HEX64.match(value.lower().replace(":", "")):
        raise FactsError(f"{name}: expected the SHA-256 of the SubjectPublicKeyInfo, 64 hex")
    return value.lower().replace(":", "")


def given_facts(raw: Mapping[str, Any], not_before: int | None) -> CertFacts:
    """Facts given directly on an event (no certificate), validated."""
    subject = raw.get("subject")
    if subject is not None and (not isinstance(subject, str) or len(subject) > MAX_SUBJECT):
        raise FactsError(f"subject: expected a string of at most {MAX_SUBJECT} characters")
    sans = raw.get("sans", [])
    if not isinstance(sans, Sequence) or isinstance(sans, str):
        raise FactsError("sans: expected a list of names such as dns:example.com")
    if len(sans) > MAX_SANS or not all(isinstance(s, str) and 0 < len(s) <= 512 for s in sans):
        raise FactsError(f"sans: at most {MAX_SANS} names of at most 512 characters")
    key_id = raw.get("key_id")
    if key_id is not None:
        if not isinstance(key_id, str) or not _HEX.match(key_id.lower().replace(":", "")):
            raise FactsError("key_id: expected the subject key identifier in hex")
        key_id = key_id.lower().replace(":", "")
        if len(key_id) > 128:
            raise FactsError("key_id: longer than 64 octets")
    spki = raw.get("spki_sha256")
    return CertFacts(
        not_before=not_before,
        subject=subject,
        sans=tuple(sans),
        key_id=key_id,
        spki_sha256=None if spki is None else key_hash(spki),
        owner=None if raw.get("owner") is None else label(raw["owner"], "owner"),
        profile=None if raw.get("profile") is None else label(raw["profile"], "profile"),
    )


def certificate_event_fields(certificate: x509.Certificate) -> dict[str, str]:
    """The `certificate` field of an event for one certificate (imports, the demo)."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return {"certificate": base64.b64encode(der).decode()}
