"""Signing: one Signer protocol, software keys now, PKCS#11 HSMs through the same protocol."""

from .base import Signer, SignerBusy, SignerError
from .identity import ResponderConfigError, ResponderIdentity, ValidityExceedsCertificate
from .software import SoftwareSigner, read_passphrase

__all__ = [
    "ResponderConfigError",
    "ResponderIdentity",
    "Signer",
    "SignerBusy",
    "SignerError",
    "SoftwareSigner",
    "ValidityExceedsCertificate",
    "read_passphrase",
]
