"""A full CRL per issuer, built with `cryptography`'s builder and an in-memory issuer key.

This is what `revocd demo` publishes so the CRL DP URL in its certificates answers. It
holds the CRL rules (RFC 5280 section 5, BR 7.2): v2, AKI, a CRL Number that only grows,
nextUpdate within 10 days, reason codes only where not `unspecified`, invalidity dates.
It is not the production generator (pre-encoded shards, HSM signing, safety checks
before publishing), which crlgen grows into.
"""

import datetime as dt
import os
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from responder.ocsp.types import RevocationReason
from responder.store import Store

from .publish import crl_number as publish_number

MAX_VALIDITY = dt.timedelta(days=10) - dt.timedelta(seconds=1)  # BR 7.2: < 10 days

_FLAGS = {
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    RevocationReason.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
    RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.CERTIFICATE_HOLD: x509.ReasonFlags.certificate_hold,
    RevocationReason.PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
    RevocationReason.AA_COMPROMISE: x509.ReasonFlags.aa_compromise,
}


def crl_number(previous: int | None = None) -> int:
    """The CRL Number for a CRL made now (see crlgen.publish.crl_number)."""
    return publish_number(int(time.time()), previous)


async def build_full_crl(
    store: Store,
    issuer_name: str,
    issuer_cert: x509.Certificate,
    key: object,
    validity: dt.timedelta = dt.timedelta(days=7),
    previous_number: int | None = None,
) -> bytes:
    """DER of a full CRL of every revoked certificate the store holds for the issuer."""
    if validity > MAX_VALIDITY:
        raise ValueError("a CRL's nextUpdate must be within 10 days of thisUpdate (BR 7.2)")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(now)
        .next_update(now + validity)
        .add_extension(x509.CRLNumber(crl_number(previous_number)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    async for record in store.revoked_records(issuer_name):
        assert record.revoked_at is not None
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(record.serial)
            .revocation_date(dt.datetime.fromtimestamp(record.revoked_at, dt.UTC))
        )
        if record.reason is not None and record.reason in _FLAGS:
            entry = entry.add_extension(x509.CRLReason(_FLAGS[record.reason]), critical=False)
        if record.invalidity_date is not None:
            entry = entry.add_extension(
                x509.InvalidityDate(
                    dt.datetime.fromtimestamp(record.invalidity_date, dt.UTC).replace(tzinfo=None)
                ),
                critical=False,
            )
        builder = builder.add_revoked_certificate(entry.build())
    if not isinstance(
        key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)
    ):
        raise TypeError("unsupported issuer key")
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    crl = builder.sign(key, algorithm)
    return crl.public_bytes(serialization.Encoding.DER)


def publish_atomically(directory: Path, name: str, der: bytes) -> Path:
    """Write to a temporary file and rename, so readers see the old or the new CRL whole."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    tmp = directory / f".{name}.tmp"
    with tmp.open("wb") as f:
        f.write(der)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return target
