"""Software keys from PEM files, signed with `cryptography`."""

import os
from pathlib import Path
from typing import Literal

import trio
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from . import algorithms
from .base import SignerError

RsaPadding = Literal["pkcs1v15", "pss"]

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
_EC_CURVES: dict[str, tuple[str, bytes]] = {
    "secp256r1": ("sha256", algorithms.ECDSA_SHA256),
    "secp384r1": ("sha384", algorithms.ECDSA_SHA384),
    "secp521r1": ("sha512", algorithms.ECDSA_SHA512),
}
_RSA_PKCS1 = {
    "sha256": algorithms.RSA_SHA256,
    "sha384": algorithms.RSA_SHA384,
    "sha512": algorithms.RSA_SHA512,
}
MIN_RSA_BITS = 2048
# Data at least this large (a big CRL, never an OCSP answer) is signed in a worker thread.
OFF_LOOP_BYTES = 1 << 20


class SoftwareSigner:
    """A private key held in process memory.

    ECDSA P-256/P-384/P-521 (hash follows the curve), RSA >= 2048 bits with
    PKCS#1 v1.5 or PSS, Ed25519. Signing is a few tens of microseconds for
    ECDSA and Ed25519, so it runs inline rather than on a worker thread.
    """

    def __init__(
        self,
        key: object,
        *,
        rsa_padding: RsaPadding = "pkcs1v15",
        rsa_hash: str = "sha256",
    ) -> None:
        self._key = key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if key.curve.name not in _EC_CURVES:
                raise SignerError(
                    f"unsupported EC curve {key.curve.name}; use P-256, P-384 or P-521"
                )
            hash_name, self._alg = _EC_CURVES[key.curve.name]
            self._ecdsa = ec.ECDSA(_HASHES[hash_name])
            self.description = f"ECDSA {key.curve.name}"
        elif isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < MIN_RSA_BITS:
                raise SignerError(
                    f"RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} required"
                )
            if rsa_hash not in _HASHES:
                raise SignerError(
                    f"unsupported RSA hash {rsa_hash!r}; use sha256, sha384 or sha512"
                )
            self._hash = _HASHES[rsa_hash]
            if rsa_padding == "pkcs1v15":
                self._padding: padding.AsymmetricPadding = padding.PKCS1v15()
                self._alg = _RSA_PKCS1[rsa_hash]
            elif rsa_padding == "pss":
                self._padding = padding.PSS(
                    mgf=padding.MGF1(self._hash), salt_length=self._hash.digest_size
                )
                self._alg = algorithms.rsa_pss(rsa_hash)
            else:
                raise SignerError(f"unknown RSA padding {rsa_padding!r}; use pkcs1v15 or pss")
            self.description = f"RSA-{key.key_size} {rsa_padding} {rsa_hash}"
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            self._alg = algorithms.ED25519
            self.description = "Ed25519"
        else:
            raise SignerError(f"unsupported key type {type(key).__name__}")
        public = key.public_key()
        self._spki: bytes = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_pem(
        cls,
        pem: bytes,
        passphrase: bytes | None = None,
        *,
        source: str = "key",
        rsa_padding: RsaPadding = "pkcs1v15",
        rsa_hash: str = "sha256",
    ) -> "SoftwareSigner":
        try:
            key = serialization.load_pem_private_key(pem, password=passphrase)
        except TypeError as exc:
            # cryptography raises TypeError both for "encrypted, no password" and
            # "password given, key not encrypted".
            if passphrase is None:
                raise SignerError(
                    f"{source} is encrypted: configure a passphrase file or environment variable"
                ) from exc
            raise SignerError(f"{source} is not encrypted but a passphrase was given") from exc
        except ValueError as exc:
            raise SignerError(
                f"{source}: cannot load private key (wrong passphrase or not a PEM key)"
            ) from exc
        except UnsupportedAlgorithm as exc:
            raise SignerError(f"{source}: unsupported key algorithm") from exc
        return cls(key, rsa_padding=rsa_padding, rsa_hash=rsa_hash)

    @classmethod
    def from_pem_file(
        cls,
        path: str | Path,
        *,
        passphrase_file: str | Path | None = None,
        passphrase_env: str | None = None,
        rsa_padding: RsaPadding = "pkcs1v15",
        rsa_hash: str = "sha256",
    ) -> "SoftwareSigner":
        passphrase = read_passphrase(passphrase_file, passphrase_env)
        try:
            pem = Path(path).read_bytes()
        except OSError as exc:
            raise SignerError(f"cannot read key file {path}: {exc.strerror}") from exc
        return cls.from_pem(
            pem, passphrase, source=f"key file {path}", rsa_padding=rsa_padding, rsa_hash=rsa_hash
        )

    @property
    def signature_algorithm(self) -> bytes:
        return self._alg

    @property
    def public_key_info(self) -> bytes:
        return self._spki

    def sign_sync(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, self._ecdsa)
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, self._padding, self._hash)
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        return key.sign(data)

    async def sign(self, data: bytes) -> bytes:
        if len(data) >= OFF_LOOP_BYTES:
            # A CRL of a million entries is 49 MB to hash: cryptography lets go of the GIL
            # while it signs, so in a worker thread the event loop keeps running.
            return await trio.to_thread.run_sync(self.sign_sync, data)
        return self.sign_sync(data)


def read_passphrase(passphrase_file: str | Path | None, passphrase_env: str | None) -> bytes | None:
    """The key passphrase from a file (trailing newline dropped) or an environment variable."""
    if passphrase_file is not None and passphrase_env is not None:
        raise SignerError("give a passphrase file or a passphrase environment variable, not both")
    if passphrase_file is not None:
        try:
            return Path(passphrase_file).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise SignerError(
                f"cannot read passphrase file {passphrase_file}: {exc.strerror}"
            ) from exc
    if passphrase_env is not None:
        value = os.environ.get(passphrase_env)
        if value is None:
            raise SignerError(f"passphrase environment variable {passphrase_env} is not set")
        return value.encode()
    return None
