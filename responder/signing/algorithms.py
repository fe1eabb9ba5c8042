"""AlgorithmIdentifier DER for the signature algorithms revocd signs with."""

from asn1crypto.algos import SignedDigestAlgorithm

ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
ECDSA_SHA384 = bytes.fromhex("300a06082a8648ce3d040303")
ECDSA_SHA512 = bytes.fromhex("300a06082a8648ce3d040304")
# PKCS#1 v1.5 identifiers carry an explicit NULL (RFC 4055 section 5).
RSA_SHA256 = bytes.fromhex("300d06092a864886f70d01010b0500")
RSA_SHA384 = bytes.fromhex("300d06092a864886f70d01010c0500")
RSA_SHA512 = bytes.fromhex("300d06092a864886f70d01010d0500")
ED25519 = bytes.fromhex("300506032b6570")

_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}


def rsa_pss(hash_name: str) -> bytes:
    """RSASSA-PSS with MGF1 over the same hash and salt = digest length (RFC 4055 section 3.1)."""
    return bytes(
        SignedDigestAlgorithm(
            {
                "algorithm": "rsassa_pss",
                "parameters": {
                    "hash_algorithm": {"algorithm": hash_name},
                    "mask_gen_algorithm": {
                        "algorithm": "mgf1",
                        "parameters": {"algorithm": hash_name},
                    },
                    "salt_length": _DIGEST_SIZES[hash_name],
                },
            }
        ).dump()
    )
