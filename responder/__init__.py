"""revocd: OCSP and CRL revocation service."""

__version__ = "0.1.0"
