"""AIA hosting: each issuer's certificate at the caIssuers URL its certificates name
(RFC 5280 4.2.2.1), the third thing a relying party fetches from a revocation service
besides OCSP and CRLs.

A single DER certificate is `application/pkix-cert` (RFC 2585); a bundle is a
"certs-only" CMS SignedData, `application/pkcs7-mime`, of the issuer and the extra
certificates (the path up to a root); its certificates are a DER SET, so in the order
DER sorts them, which relying parties do not depend on. Both are built once, at start.
"""

import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from ..cdn.tags import aia_tag, issuer_tag
from ..config import Config

CERT_TYPE = b"application/pkix-cert"
P7C_TYPE = b"application/pkcs7-mime"
# Caches may keep an AIA file this long (seconds): it changes only with revocd's
# configuration, and a purge follows such a change.
MAX_AGE = 86400


@dataclass(frozen=True, slots=True)
class AiaFile:
    issuer: str
    body: bytes
    content_type: bytes
    etag: bytes
    mtime: int  # Last-Modified: the issuer certificate's notBefore
    expires: int  # the issuer certificate's notAfter: no CDN keeps it beyond
    tags: tuple[str, ...]
    max_age: int = MAX_AGE


def _file(issuer: str, body: bytes, kind: bytes, cert: x509.Certificate) -> AiaFile:
    return AiaFile(
        issuer,
        body,
        kind,
        b'"' + hashlib.sha256(body).hexdigest().encode() + b'"',
        int(cert.not_valid_before_utc.timestamp()),
        int(cert.not_valid_after_utc.timestamp()),
        (issuer_tag(issuer), aia_tag(issuer)),
    )


def aia_files(config: Config) -> dict[str, AiaFile]:
    """Request path -> file, for every issuer with aia_url or aia_p7c_url."""
    out: dict[str, AiaFile] = {}
    for name, issuer in config.issuers.items():
        cert = config.certificates.get(name)
        if cert is None:
            continue
        if issuer.aia_url:
            der = cert.public_bytes(serialization.Encoding.DER)
            out[urlsplit(issuer.aia_url).path] = _file(name, der, CERT_TYPE, cert)
        if issuer.aia_p7c_url:
            chain = [cert] + [
                x509.load_pem_x509_certificate(path.read_bytes())
                for path in issuer.aia_extra_certificates
            ]
            bundle = pkcs7.serialize_certificates(chain, serialization.Encoding.DER)
            out[urlsplit(issuer.aia_p7c_url).path] = _file(name, bundle, P7C_TYPE, cert)
    return out


def aia_digest(files: dict[str, AiaFile], issuer: str) -> str:
    """What an issuer's AIA files are now, to tell whether they changed since the last
    start (a change is purged)."""
    h = hashlib.sha256()
    for path in sorted(files):
        if files[path].issuer == issuer:
            h.update(path.encode() + b"\0" + files[path].etag)
    return h.hexdigest()
