"""Software keys: every algorithm signs verifiably; key loading errors name the problem."""

import pytest
import trio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from responder.signing import SignerError, SoftwareSigner
from responder.signing import algorithms as algs
from responder.testing import pki

DATA = b"to be signed" * 10


def _verify(signer: SoftwareSigner, key, signature: bytes) -> None:
    public = key.public_key()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        h = {256: hashes.SHA256(), 384: hashes.SHA384()}[key.curve.key_size]
        public.verify(signature, DATA, ec.ECDSA(h))
    elif isinstance(key, rsa.RSAPrivateKey):
        if signer.signature_algorithm == algs.RSA_SHA256:
            public.verify(signature, DATA, padding.PKCS1v15(), hashes.SHA256())
        else:
            public.verify(
                signature,
                DATA,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
    else:
        public.verify(signature, DATA)


@pytest.mark.parametrize(
    ("kind", "pad", "alg"),
    [
        ("ec-p256", "pkcs1v15", algs.ECDSA_SHA256),
        ("ec-p384", "pkcs1v15", algs.ECDSA_SHA384),
        ("rsa-2048", "pkcs1v15", algs.RSA_SHA256),
        ("rsa-2048", "pss", algs.rsa_pss("sha256")),
        ("ed25519", "pkcs1v15", algs.ED25519),
    ],
)
def test_sign_and_verify(kind, pad, alg):
    key = pki.new_key(kind)
    signer = SoftwareSigner(key, rsa_padding=pad)
    assert signer.signature_algorithm == alg
    assert signer.public_key_info == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = trio.run(signer.sign, DATA)
    _verify(signer, key, signature)


def _encrypted_pem(key, passphrase: bytes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def test_encrypted_pem_with_passphrase_file(tmp_path):
    key = pki.new_key("ec-p256")
    (tmp_path / "k.pem").write_bytes(_encrypted_pem(key, b"s3cret"))
    (tmp_path / "pass").write_bytes(b"s3cret\n")
    signer = SoftwareSigner.from_pem_file(tmp_path / "k.pem", passphrase_file=tmp_path / "pass")
    _verify(signer, key, signer.sign_sync(DATA))


def test_encrypted_pem_with_passphrase_env(tmp_path, monkeypatch):
    key = pki.new_key("rsa-2048")
    (tmp_path / "k.pem").write_bytes(_encrypted_pem(key, b"from-env"))
    monkeypatch.setenv("REVOCD_TEST_PASS", "from-env")
    signer = SoftwareSigner.from_pem_file(tmp_path / "k.pem", passphrase_env="REVOCD_TEST_PASS")
    _verify(signer, key, signer.sign_sync(DATA))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("encrypted-no-pass", "is encrypted"),
        ("wrong-pass", "wrong passphrase"),
        ("pass-for-plain", "not encrypted"),
        ("missing-file", "cannot read key file"),
        ("missing-env", "REVOCD_TEST_UNSET is not set"),
        ("garbage", "cannot load private key"),
        ("rsa-1024", "at least 2048"),
        ("secp256k1", "unsupported EC curve"),
    ],
)
def test_key_loading_errors_name_the_problem(tmp_path, monkeypatch, setup, message):
    path = tmp_path / "k.pem"
    kwargs = {}
    plain = pki.Issued(None, pki.new_key("ec-p256")).key_pem  # type: ignore[arg-type]
    if setup == "encrypted-no-pass":
        path.write_bytes(_encrypted_pem(pki.new_key("ec-p256"), b"x"))
    elif setup == "wrong-pass":
        path.write_bytes(_encrypted_pem(pki.new_key("ec-p256"), b"x"))
        (tmp_path / "p").write_text("y")
        kwargs["passphrase_file"] = tmp_path / "p"
    elif setup == "pass-for-plain":
        path.write_bytes(plain)
        monkeypatch.setenv("REVOCD_TEST_PASS", "x")
        kwargs["passphrase_env"] = "REVOCD_TEST_PASS"
    elif setup == "missing-env":
        path.write_bytes(plain)
        monkeypatch.delenv("REVOCD_TEST_UNSET", raising=False)
        kwargs["passphrase_env"] = "REVOCD_TEST_UNSET"
    elif setup == "garbage":
        path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    elif setup == "rsa-1024":
        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        path.write_bytes(pki.Issued(None, weak).key_pem)  # type: ignore[arg-type]
    elif setup == "secp256k1":
        path.write_bytes(pki.Issued(None, ec.generate_private_key(ec.SECP256K1())).key_pem)  # type: ignore[arg-type]
    with pytest.raises(SignerError, match=message):
        SoftwareSigner.from_pem_file(path, **kwargs)


def test_passphrase_file_and_env_together_rejected(tmp_path):
    with pytest.raises(SignerError, match="not both"):
        SoftwareSigner.from_pem_file(
            tmp_path / "k", passphrase_file=tmp_path / "p", passphrase_env="X"
        )
