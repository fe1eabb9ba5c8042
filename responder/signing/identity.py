"""The responder identity: which key signs answers for an issuer, and the checks on it."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..ocsp.certid import subject_public_key_bits
from ..ocsp.response import SingleAnswer, response_data, successful_response
from .base import Signer


class ResponderConfigError(ValueError):
    """The signer and certificates do not form a valid OCSP responder."""


class ValidityExceedsCertificate(ValueError):
    """An answer's nextUpdate would pass the responder certificate's notAfter."""


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class ResponderIdentity:
    """Signs OCSP responses about one issuer's certificates.

    Either the issuer signs its own answers (`responder_cert` is None), or a
    delegated responder certificate issued by the issuer does (RFC 6960 section
    4.2.2.2), in which case it is embedded in every response.
    """

    signer: Signer
    issuer: x509.Certificate
    responder_cert: x509.Certificate | None = None
    key_hash: bytes = field(init=False)
    embedded_certs: tuple[bytes, ...] = field(init=False)
    not_after: int = field(init=False)

    def __post_init__(self) -> None:
        signing_cert = self.responder_cert or self.issuer
        if self.signer.public_key_info != _spki(signing_cert):
            which = "delegated responder" if self.responder_cert else "issuer"
            raise ResponderConfigError(f"signer key does not match the {which} certificate")
        if self.responder_cert is not None:
            check_delegated_responder(self.responder_cert, self.issuer)
            embedded: tuple[bytes, ...] = (
                self.responder_cert.public_bytes(serialization.Encoding.DER),
            )
        else:
            embedded = ()
        object.__setattr__(
            self, "key_hash", hashlib.sha1(subject_public_key_bits(signing_cert)).digest()
        )
        object.__setattr__(self, "embedded_certs", embedded)
        object.__setattr__(self, "not_after", int(signing_cert.not_valid_after_utc.timestamp()))

    def _tbs(self, answers: Sequence[SingleAnswer], produced_at: int, nonce: bytes | None) -> bytes:
        for answer in answers:
            if answer.next_update is not None and answer.next_update > self.not_after:
                raise ValidityExceedsCertificate(
                    "nextUpdate would pass the responder certificate's notAfter"
                )
        return response_data(self.key_hash, produced_at, answers, nonce)

    async def sign(
        self,
        answers: Sequence[SingleAnswer],
        produced_at: int,
        nonce: bytes | None = None,
    ) -> bytes:
        """A complete signed OCSPResponse for `answers`."""
        tbs = self._tbs(answers, produced_at, nonce)
        return self._response(tbs, await self.signer.sign(tbs))

    def _response(self, tbs: bytes, signature: bytes) -> bytes:
        return successful_response(
            tbs, self.signer.signature_algorithm, signature, self.embedded_certs
        )

    @property
    def signs_inline(self) -> bool:
        """Whether the key signs without waiting (a software key): then `sign_now`
        may be called outside any task, as the GET/POST reactor does."""
        return callable(getattr(self.signer, "sign_sync", None))

    def sign_now(
        self,
        answers: Sequence[SingleAnswer],
        produced_at: int,
        nonce: bytes | None = None,
    ) -> bytes:
        """`sign` for a key that signs inline (signs_inline): the same bytes, no await."""
        tbs = self._tbs(answers, produced_at, nonce)
        return self._response(tbs, self.signer.sign_sync(tbs))  # type: ignore[attr-defined]


def check_delegated_responder(responder: x509.Certificate, issuer: x509.Certificate) -> None:
    """RFC 6960 section 4.2.2.2 and BR 4.9.9: what a client checks, checked before we sign."""
    if responder.issuer != issuer.subject:
        raise ResponderConfigError("delegated responder certificate was not issued by the issuer")
    try:
        responder.verify_directly_issued_by(issuer)
    except (ValueError, TypeError) as exc:
        raise ResponderConfigError(
            f"delegated responder certificate does not verify under the issuer: {exc}"
        ) from exc
    try:
        eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise ResponderConfigError(
            "delegated responder certificate has no extendedKeyUsage (needs id-kp-OCSPSigning)"
        ) from exc
    if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        raise ResponderConfigError("delegated responder certificate lacks id-kp-OCSPSigning")
    try:
        responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    except x509.ExtensionNotFound as exc:
        raise ResponderConfigError(
            "delegated responder certificate lacks id-pkix-ocsp-nocheck (BR 4.9.9)"
        ) from exc
