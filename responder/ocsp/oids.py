"""DER encodings (tag, length and content) of the object identifiers the core uses."""

from .types import HashAlgorithm

# Hash algorithms allowed in a CertID.
SHA1 = bytes.fromhex("06052b0e03021a")  # 1.3.14.3.2.26
SHA256 = bytes.fromhex("0609608648016503040201")  # 2.16.840.1.101.3.4.2.1
SHA384 = bytes.fromhex("0609608648016503040202")  # 2.16.840.1.101.3.4.2.2
SHA512 = bytes.fromhex("0609608648016503040203")  # 2.16.840.1.101.3.4.2.3

HASH_OIDS: dict[HashAlgorithm, bytes] = {
    HashAlgorithm.SHA1: SHA1,
    HashAlgorithm.SHA256: SHA256,
    HashAlgorithm.SHA384: SHA384,
    HashAlgorithm.SHA512: SHA512,
}

# id-pkix-ocsp arc, 1.3.6.1.5.5.7.48.1.x
OCSP_BASIC = bytes.fromhex("06092b0601050507300101")
OCSP_NONCE = bytes.fromhex("06092b0601050507300102")
OCSP_CRL = bytes.fromhex("06092b0601050507300103")
OCSP_ACCEPTABLE_RESPONSES = bytes.fromhex("06092b0601050507300104")
OCSP_NOCHECK = bytes.fromhex("06092b0601050507300105")
OCSP_SERVICE_LOCATOR = bytes.fromhex("06092b0601050507300107")
OCSP_PREF_SIG_ALGS = bytes.fromhex("06092b0601050507300108")
