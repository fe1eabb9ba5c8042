"""Small certificate factory for the demo PKI and the tests.

Produces what a real CA hierarchy would: a root, an issuing CA, a delegated
OCSP responder (id-kp-OCSPSigning + id-pkix-ocsp-nocheck, BR 4.9.9) and TLS
leaf certificates carrying AIA OCSP and CRL DP URLs.
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "ed25519")


def new_key(kind: str = "ec-p256") -> CertificateIssuerPrivateKeyTypes:
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[4:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {kind!r}; choose from {', '.join(KEY_TYPES)}")


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, cert_path: Path, key_path: Path | None = None) -> None:
        cert_path.write_bytes(self.cert_pem)
        if key_path is not None:
            key_path.touch(mode=0o600)
            key_path.write_bytes(self.key_pem)


def _hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "revocd demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name,
    issuer_name: x509.Name,
    public_key: object,
    serial: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _ski_aki(
    builder: x509.CertificateBuilder, subject_key: object, issuer: x509.Certificate | None
) -> x509.CertificateBuilder:
    ski = x509.SubjectKeyIdentifier.from_public_key(subject_key)  # type: ignore[arg-type]
    builder = builder.add_extension(ski, critical=False)
    if issuer is None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    else:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return builder.add_extension(aki, critical=False)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def make_root(common_name: str, key_type: str = "ec-p256", days: int = 3650) -> Issued:
    key = new_key(key_type)
    now = _now()
    name = _name(common_name)
    builder = _builder(
        name,
        name,
        key.public_key(),
        x509.random_serial_number(),
        now - dt.timedelta(hours=1),
        now + dt.timedelta(days=days),
    )
    builder = _ski_aki(builder, key.public_key(), None)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    builder = builder.add_extension(_ca_key_usage(), critical=True)
    return Issued(builder.sign(key, _hash_for(key)), key)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _signing_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def make_intermediate(
    common_name: str, parent: Issued, key_type: str = "ec-p256", days: int = 1825
) -> Issued:
    key = new_key(key_type)
    now = _now()
    builder = _builder(
        _name(common_name),
        parent.cert.subject,
        key.public_key(),
        x509.random_serial_number(),
        now - dt.timedelta(hours=1),
        now + dt.timedelta(days=days),
    )
    builder = _ski_aki(builder, key.public_key(), parent.cert)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    builder = builder.add_extension(_ca_key_usage(), critical=True)
    return Issued(builder.sign(parent.key, _hash_for(parent.key)), key)


def make_responder(
    issuer: Issued,
    key_type: str = "ec-p256",
    days: int = 90,
    common_name: str = "revocd demo OCSP responder",
    key: CertificateIssuerPrivateKeyTypes | None = None,
) -> Issued:
    """A delegated OCSP responder certificate with a new software key."""
    key = key or new_key(key_type)
    return Issued(certify_responder_key(issuer, key.public_key(), days, common_name), key)


def certify_responder_key(
    issuer: Issued,
    public_key: object,
    days: int = 90,
    common_name: str = "revocd demo OCSP responder",
) -> x509.Certificate:
    """A delegated OCSP responder certificate for a public key (RFC 6960 section 4.2.2.2,
    BR 4.9.9): id-kp-OCSPSigning, id-pkix-ocsp-nocheck, digitalSignature. The key may
    live in an HSM; only its public half is needed here."""
    now = _now()
    builder = _builder(
        _name(common_name),
        issuer.cert.subject,
        public_key,
        x509.random_serial_number(),
        now - dt.timedelta(hours=1),
        now + dt.timedelta(days=days),
    )
    builder = _ski_aki(builder, public_key, issuer.cert)
    builder = builder.add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    builder = builder.add_extension(_signing_key_usage(), critical=True)
    builder = builder.add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False
    )
    builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    return builder.sign(issuer.key, _hash_for(issuer.key))


def make_leaf(
    issuer: Issued,
    serial: int,
    dns_name: str,
    ocsp_url: str | None = None,
    crl_url: str | None = None,
    key_type: str = "ec-p256",
    days: int = 90,
    ca_issuers_url: str | None = None,
    key: CertificateIssuerPrivateKeyTypes | None = None,
) -> Issued:
    """A TLS server certificate as a public CA would issue it; `key` certifies a key
    another certificate has too (the key-compromise cascade's case)."""
    key = key or new_key(key_type)
    now = _now()
    builder = _builder(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]),
        issuer.cert.subject,
        key.public_key(),
        serial,
        now - dt.timedelta(hours=1),
        now + dt.timedelta(days=days),
    )
    builder = _ski_aki(builder, key.public_key(), issuer.cert)
    builder = builder.add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    builder = builder.add_extension(_signing_key_usage(), critical=True)
    builder = builder.add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
    )
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False
    )
    access = []
    if ocsp_url:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
            )
        )
    if ca_issuers_url:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(ca_issuers_url),
            )
        )
    if access:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(access),
            critical=False,
        )
    if crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(crl_url)], None, None, None
                    )
                ]
            ),
            critical=False,
        )
    return Issued(builder.sign(issuer.key, _hash_for(issuer.key)), key)
