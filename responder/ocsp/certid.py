"""CertID values an issuer answers to (RFC 6960 section 4.1.1)."""

import hashlib
from dataclasses import dataclass

from asn1crypto.keys import PublicKeyInfo
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .der import HASH_OIDS, der_header
from .types import HashAlgorithm


def encode_integer(value: int) -> bytes:
    """INTEGER TLV in minimal two's complement."""
    length = ((value if value >= 0 else ~value).bit_length() + 8) // 8
    content = value.to_bytes(length, "big", signed=True)
    return der_header(0x02, len(content)) + content


def subject_public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING value, without the unused-bits octet."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bits: bytes = PublicKeyInfo.load(spki)["public_key"].contents[1:]
    return bits


@dataclass(frozen=True, slots=True)
class IssuerHashes:
    """issuerNameHash and issuerKeyHash of one issuer under each supported algorithm."""

    name_hashes: tuple[bytes, bytes, bytes, bytes]
    key_hashes: tuple[bytes, bytes, bytes, bytes]

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> "IssuerHashes":
        subject = cert.subject.public_bytes()
        key = subject_public_key_bits(cert)
        algs = list(HashAlgorithm)
        return cls(
            tuple(hashlib.new(a.hashlib_name, subject).digest() for a in algs),  # type: ignore[arg-type]
            tuple(hashlib.new(a.hashlib_name, key).digest() for a in algs),  # type: ignore[arg-type]
        )

    def cert_id(self, algorithm: HashAlgorithm, serial: int) -> bytes:
        """CertID DER as revocd encodes it: hash parameters NULL, as OpenSSL and Go do."""
        return encode_cert_id(
            algorithm, self.name_hashes[algorithm], self.key_hashes[algorithm], serial
        )

    def matches(self, algorithm: int, name_hash: bytes, key_hash: bytes) -> bool:
        return self.name_hashes[algorithm] == name_hash and self.key_hashes[algorithm] == key_hash


def encode_cert_id(
    algorithm: HashAlgorithm, name_hash: bytes, key_hash: bytes, serial: int
) -> bytes:
    alg = HASH_OIDS[algorithm] + b"\x05\x00"
    body = (
        der_header(0x30, len(alg))
        + alg
        + der_header(0x04, len(name_hash))
        + name_hash
        + der_header(0x04, len(key_hash))
        + key_hash
        + encode_integer(serial)
    )
    return der_header(0x30, len(body)) + body
