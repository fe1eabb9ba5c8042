"""The one signer protocol every key kind implements."""

from typing import Protocol, runtime_checkable


class SignerError(Exception):
    """The signer could not produce a signature (bad key, token gone, timeout)."""


class SignerBusy(SignerError):
    """The signer's queue is full; the caller answers tryLater."""


@runtime_checkable
class Signer(Protocol):
    """Signs to-be-signed DER (OCSP ResponseData, CRL TBSCertList).

    `signature_algorithm` is the complete AlgorithmIdentifier DER that goes
    next to the signature; `public_key_info` is the SubjectPublicKeyInfo DER
    of the key, used to check it against the certificate it claims to be.
    """

    @property
    def signature_algorithm(self) -> bytes: ...

    @property
    def public_key_info(self) -> bytes: ...

    async def sign(self, data: bytes) -> bytes: ...
