"""Plain value types shared by the decoder twins and the encoder.

They are NamedTuples so that the Cython decoder and its pure-Python twin can
build them cheaply and tests can compare their results with `==`.
"""

from enum import IntEnum
from typing import NamedTuple


class HashAlgorithm(IntEnum):
    """CertID hash algorithms revocd answers for (RFC 6960 section 4.1.1)."""

    SHA1 = 0
    SHA256 = 1
    SHA384 = 2
    SHA512 = 3

    @property
    def digest_size(self) -> int:
        return _DIGEST_SIZES[self]

    @property
    def hashlib_name(self) -> str:
        return _HASHLIB_NAMES[self]


_DIGEST_SIZES = {
    HashAlgorithm.SHA1: 20,
    HashAlgorithm.SHA256: 32,
    HashAlgorithm.SHA384: 48,
    HashAlgorithm.SHA512: 64,
}
_HASHLIB_NAMES = {
    HashAlgorithm.SHA1: "sha1",
    HashAlgorithm.SHA256: "sha256",
    HashAlgorithm.SHA384: "sha384",
    HashAlgorithm.SHA512: "sha512",
}


class CertID(NamedTuple):
    """One CertID from a request.

    `der` is the CertID exactly as the client encoded it; live answers echo it
    byte for byte so that clients which compare CertIDs as bytes match too.
    """

    hash_algorithm: int
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    der: bytes


class OCSPRequest(NamedTuple):
    """A decoded OCSPRequest: what revocd needs from it and nothing more."""

    cert_ids: list[CertID]
    nonce: bytes | None
    signed: bool


class CertStatus(IntEnum):
    GOOD = 0
    REVOKED = 1
    UNKNOWN = 2


class RevocationReason(IntEnum):
    """CRLReason (RFC 5280 section 5.3.1); value 7 is not used."""

    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    CA_COMPROMISE = 2
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    CESSATION_OF_OPERATION = 5
    CERTIFICATE_HOLD = 6
    REMOVE_FROM_CRL = 8
    PRIVILEGE_WITHDRAWN = 9
    AA_COMPROMISE = 10

    @property
    def rfc_name(self) -> str:
        """The name RFC 5280 section 5.3.1 uses, which is also the event API's spelling."""
        return _RFC_NAMES[self]

    @classmethod
    def from_rfc_name(cls, name: str) -> "RevocationReason":
        """Look up a reason by its RFC 5280 name, ignoring case (cACompromise = caCompromise)."""
        try:
            return _BY_NAME[name.lower()]
        except KeyError:
            raise ValueError(f"unknown revocation reason {name!r}") from None


_RFC_NAMES = {
    RevocationReason.UNSPECIFIED: "unspecified",
    RevocationReason.KEY_COMPROMISE: "keyCompromise",
    RevocationReason.CA_COMPROMISE: "cACompromise",
    RevocationReason.AFFILIATION_CHANGED: "affiliationChanged",
    RevocationReason.SUPERSEDED: "superseded",
    RevocationReason.CESSATION_OF_OPERATION: "cessationOfOperation",
    RevocationReason.CERTIFICATE_HOLD: "certificateHold",
    RevocationReason.REMOVE_FROM_CRL: "removeFromCRL",
    RevocationReason.PRIVILEGE_WITHDRAWN: "privilegeWithdrawn",
    RevocationReason.AA_COMPROMISE: "aACompromise",
}
_BY_NAME = {name.lower(): reason for reason, name in _RFC_NAMES.items()}


class ResponseStatus(IntEnum):
    """OCSPResponseStatus (RFC 6960 section 4.2.1); value 4 is not used."""

    SUCCESSFUL = 0
    MALFORMED_REQUEST = 1
    INTERNAL_ERROR = 2
    TRY_LATER = 3
    SIG_REQUIRED = 5
    UNAUTHORIZED = 6
