"""Bring an existing CA's history into revocd without replaying it by hand.

Three sources, all turned into ordinary events and applied through the
Ingestor, so validation, idempotency and durability are the same as for live
pushes (importing the same file twice changes nothing the second time):

- an OpenSSL CA database (`index.txt`);
- a CRL (DER or PEM) signed by the issuer;
- a directory of certificates issued by the issuer.
"""

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import CRLEntryExtensionOID

from .config import IssuerConfig
from .ingest import MAX_BATCH, Ingestor
from .inventory.facts import certificate_event_fields

log = logging.getLogger("revocd.import")

MAX_REPORTED_ERRORS = 100
CERT_SUFFIXES = {".pem", ".crt", ".cer", ".der"}

# OpenSSL `ca` writes these reason names into index.txt (apps/ca.c, crl_reasons);
# keyTime/CAkeyTime carry a compromise time, holdInstruction a hold instruction OID.
_OPENSSL_REASONS = {
    "unspecified": "unspecified",
    "keycompromise": "keyCompromise",
    "cacompromise": "cACompromise",
    "affiliationchanged": "affiliationChanged",
    "superseded": "superseded",
    "cessationofoperation": "cessationOfOperation",
    "certificatehold": "certificateHold",
    "holdinstruction": "certificateHold",
    "keytime": "keyCompromise",
    "cakeytime": "cACompromise",
}


@dataclass
class ImportReport:
    source: str
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.counts["rejected"] += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(f"{where}: {message}")

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        return f"{self.source}: {parts or 'nothing to import'}"


def _openssl_time(text: str, where: str) -> str:
    """index.txt times: UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ → RFC 3339."""
    if len(text) == 13 and text.endswith("Z"):
        year = int(text[:2])
        year += 1900 if year >= 50 else 2000  # RFC 5280 section 4.1.2.5.1
        text = f"{year:04d}{text[2:]}"
    if len(text) != 15 or not text.endswith("Z") or not text[:14].isdigit():
        raise ValueError(f"{where}: not an OpenSSL time: {text!r}")
    parsed = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=dt.UTC)
    return parsed.isoformat().replace("+00:00", "Z")


def index_events(
    path: Path, issuer: str, report: ImportReport
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Events from an OpenSSL index.txt, each with the line it came from."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            where = f"{path.name}:{number}"
            fields = line.split("\t")
            if len(fields) < 4:
                report.error(where, "expected tab-separated status, expiry, revocation, serial")
                continue
            flag, expiry, revocation, serial = fields[:4]
            try:
                not_after = _openssl_time(expiry, "expiry")
                yield (
                    where,
                    {"type": "issued", "issuer": issuer, "serial": serial, "not_after": not_after},
                )
                if flag == "R":
                    yield where, _revocation(revocation, issuer, serial, not_after)
                elif flag not in ("V", "E"):
                    report.error(where, f"status: unknown flag {flag!r} (expected V, R or E)")
            except ValueError as exc:
                report.error(where, str(exc))


def _revocation(field_text: str, issuer: str, serial: str, not_after: str) -> dict[str, Any]:
    parts = field_text.split(",")
    event: dict[str, Any] = {
        "type": "revoked",
        "issuer": issuer,
        "serial": serial,
        "not_after": not_after,
        "revoked_at": _openssl_time(parts[0], "revocation"),
    }
    if len(parts) > 1:
        name = _OPENSSL_REASONS.get(parts[1].lower())
        if name is None:
            raise ValueError(f"reason: unknown OpenSSL revocation reason {parts[1]!r}")
        event["reason"] = name
        if parts[1].lower() in ("keytime", "cakeytime") and len(parts) > 2:
            event["invalidity_date"] = _openssl_time(parts[2], "compromise time")
    return event


def crl_events(
    path: Path, issuer: IssuerConfig, cert: x509.Certificate, report: ImportReport
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Revocations from a CRL the issuer signed."""
    data = path.read_bytes()
    try:
        crl = (
            x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
        )
    except ValueError as exc:
        raise ImportError_(f"{path}: not a CRL (DER or PEM): {exc}") from exc
    if crl.issuer != cert.subject:
        raise ImportError_(f"{path}: CRL issuer {crl.issuer.rfc4514_string()} is not {issuer.name}")
    if not crl.is_signature_valid(cert.public_key()):  # type: ignore[arg-type]
        raise ImportError_(f"{path}: CRL signature does not verify with {issuer.name}'s key")
    for entry in crl:
        where = f"{path.name}:{format(entry.serial_number, 'x')}"
        event: dict[str, Any] = {
            "type": "revoked",
            "issuer": issuer.name,
            "serial": format(entry.serial_number, "x"),
            "revoked_at": entry.revocation_date_utc.isoformat(),
        }
        try:
            reason = entry.extensions.get_extension_for_oid(CRLEntryExtensionOID.CRL_REASON)
            flag = reason.value.reason  # type: ignore[attr-defined]
            if flag is x509.ReasonFlags.remove_from_crl:
                report.error(where, "reason: removeFromCRL entries (delta CRLs) are not imported")
                continue
            event["reason"] = _REASON_FLAG_NAMES[flag]
        except x509.ExtensionNotFound:
            pass
        try:
            inv = entry.extensions.get_extension_for_oid(CRLEntryExtensionOID.INVALIDITY_DATE)
            event["invalidity_date"] = inv.value.invalidity_date_utc.isoformat()  # type: ignore[attr-defined]
        except x509.ExtensionNotFound:
            pass
        yield where, event


_REASON_FLAG_NAMES = {
    x509.ReasonFlags.unspecified: "unspecified",
    x509.ReasonFlags.key_compromise: "keyCompromise",
    x509.ReasonFlags.ca_compromise: "cACompromise",
    x509.ReasonFlags.affiliation_changed: "affiliationChanged",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessationOfOperation",
    x509.ReasonFlags.certificate_hold: "certificateHold",
    x509.ReasonFlags.privilege_withdrawn: "privilegeWithdrawn",
    x509.ReasonFlags.aa_compromise: "aACompromise",
}


def certificate_events(
    directory: Path, issuer: IssuerConfig, issuer_cert: x509.Certificate, report: ImportReport
) -> Iterator[tuple[str, dict[str, Any]]]:
    """`issued` events, with the certificate, for every certificate in a directory that
    the issuer signed."""
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in CERT_SUFFIXES:
            continue
        data = path.read_bytes()
        try:
            certs = (
                x509.load_pem_x509_certificates(data)
                if b"-----BEGIN" in data
                else [x509.load_der_x509_certificate(data)]
            )
        except ValueError:
            report.error(path.name, "not a certificate file")
            continue
        for cert in certs:
            where = f"{path.name}:{format(cert.serial_number, 'x')}"
            if cert.issuer != issuer_cert.subject:
                report.counts["skipped (other issuer)"] += 1
                continue
            try:
                cert.verify_directly_issued_by(issuer_cert)
            except (ValueError, TypeError, InvalidSignature):
                report.error(
                    where, f"certificate: signature does not verify with {issuer.name}'s key"
                )
                continue
            yield (
                where,
                {
                    "type": "issued",
                    "issuer": issuer.name,
                    # the certificate itself: revocd derives serial, notAfter and the
                    # inventory facts from it (inventory/facts.py)
                    **certificate_event_fields(cert),
                },
            )


class ImportError_(ValueError):
    """The source as a whole cannot be imported (wrong issuer, bad signature, unreadable)."""


async def run_import(
    ingest: Ingestor, events: Iterator[tuple[str, dict[str, Any]]], report: ImportReport
) -> ImportReport:
    """Apply events in batches of the ingest limit; record each result in the report."""
    batch: list[tuple[str, dict[str, Any]]] = []

    async def flush() -> None:
        results = await ingest.submit([event for _, event in batch])
        for (where, _), result in zip(batch, results, strict=True):
            if result.result == "rejected" or result.result == "failed":
                report.error(where, result.message)
                if result.result == "failed":
                    report.counts["rejected"] -= 1
                    report.counts["failed"] += 1
            else:
                report.counts[result.result] += 1
        batch.clear()

    for item in events:
        batch.append(item)
        if len(batch) == MAX_BATCH:
            await flush()
    if batch:
        await flush()
    log.info("import %s", report.summary())
    return report
