"""Responder key lifecycle: generate, certify (CSR), install, watch expiry, switch live.

A delegated responder certificate is short-lived. revocd warns (metric and log) 30 days
before its notAfter, never signs past it, and picks up a newly installed certificate
(and key file) while running: the watcher reloads the files when they change and swaps
the issuer's responder identity once the new pair checks out, keeping the old one if it
does not.
"""

import logging
import os
import time
from pathlib import Path

import trio
from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from ..answers.issuers import IssuerRuntime
from ..audit.trail import AuditTrail, Entry
from ..config import ConfigError, HsmConfig, IssuerConfig
from ..observability import metrics
from ..signing import ResponderConfigError, ResponderIdentity, Signer, SoftwareSigner
from ..signing.identity import check_delegated_responder
from ..signing.pkcs11 import Pkcs11KeyRef
from ..testing import pki

log = logging.getLogger("revocd.keys")

WARN_DAYS = 30


def cert_summary(cert: x509.Certificate) -> dict[str, str]:
    """How audit records name a certificate."""
    return {
        "cert_subject": cert.subject.rfc4514_string(),
        "cert_serial": format(cert.serial_number, "x"),
        "cert_not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cert_sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }


def seconds_left(identity: ResponderIdentity, now: float | None = None) -> int:
    return identity.not_after - int(time.time() if now is None else now)


def note_expiry(issuer: IssuerRuntime) -> int:
    """Publish the responder certificate's remaining life; log a warning inside 30 days."""
    left = seconds_left(issuer.identity)
    metrics.RESPONDER_CERT_EXPIRY.labels(issuer.name).set(left)
    if left < WARN_DAYS * 86400:
        log.warning(
            "issuer %s: responder certificate expires in %.1f days (notAfter %s); rotate it",
            issuer.name,
            left / 86400,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issuer.identity.not_after)),
        )
    return left


async def csr_for_signer(signer: Signer, common_name: str) -> bytes:
    """A PKCS#10 request signed through the Signer protocol, so the key may be in an HSM."""
    public = asn1_keys.PublicKeyInfo.load(signer.public_key_info)
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": asn1_x509.Name.build({"common_name": common_name}),
            "subject_pk_info": public,
            "attributes": [],
        }
    )
    tbs = info.dump()
    signature = await signer.sign(tbs)
    from asn1crypto.algos import SignedDigestAlgorithm

    request = asn1_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": SignedDigestAlgorithm.load(signer.signature_algorithm),
            "signature": signature,
        }
    )
    der = request.dump()
    return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)


def generate_file_key(path: Path, key_type: str = "ec-p256") -> SoftwareSigner:
    """A new software responder key, written 0600 (refuses to overwrite)."""
    if path.exists():
        raise ConfigError(f"{path} exists; refusing to overwrite a key")
    key = pki.new_key(key_type)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return SoftwareSigner(key)


def check_certificate_for(
    issuer_cert: x509.Certificate, cert: x509.Certificate, signer: Signer
) -> ResponderIdentity:
    """What installing `cert` for this issuer would give, or ResponderConfigError."""
    check_delegated_responder(cert, issuer_cert)
    return ResponderIdentity(signer, issuer_cert, cert)


def install_certificate(
    issuer: IssuerConfig, issuer_cert: x509.Certificate, cert_pem: bytes, signer: Signer
) -> Path:
    """Check a signed responder certificate and put it where the configuration expects it
    (atomically, so the watcher never reads half a file)."""
    if issuer.responder_certificate is None:
        raise ConfigError(f"issuers.{issuer.name}.responder_certificate: not configured")
    cert = x509.load_pem_x509_certificate(cert_pem)
    check_certificate_for(issuer_cert, cert, signer)
    target = issuer.responder_certificate
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(cert_pem)
    os.replace(tmp, target)
    log.info(
        "responder certificate for %s installed: serial %x, notAfter %s",
        issuer.name,
        cert.serial_number,
        cert.not_valid_after_utc.isoformat(),
    )
    return target


class CertificateWatcher:
    """Reloads responder certificates (and software keys) that change on disk."""

    def __init__(
        self,
        issuers: list[IssuerRuntime],
        interval: float = 10.0,
        audit: AuditTrail | None = None,
    ) -> None:
        self.issuers = issuers
        self.interval = interval
        self.audit = audit
        self._pending: list[Entry] = []
        self._seen: dict[str, tuple[float, float]] = {}
        for issuer in issuers:
            self._seen[issuer.name] = self._stamp(issuer.config)

    @staticmethod
    def _stamp(config: IssuerConfig) -> tuple[float, float]:
        def mtime(path: Path | None) -> float:
            try:
                return path.stat().st_mtime if path is not None else 0.0
            except OSError:
                return 0.0

        return mtime(config.responder_certificate), mtime(config.responder_key)

    async def run(self) -> None:
        while True:
            for issuer in self.issuers:
                self.check(issuer)
                left = note_expiry(issuer)
                if self.audit is not None and left < WARN_DAYS * 86400:
                    await self.audit.anomaly_once(
                        "responder_cert_expiring",
                        issuer.name,
                        86400,
                        issuer=issuer.name,
                        seconds_left=left,
                        **cert_summary(issuer.identity.responder_cert or issuer.identity.issuer),
                    )
            if self.audit is not None and self._pending:
                pending, self._pending = self._pending, []
                await self.audit.record_many(pending)
            await trio.sleep(self.interval)

    def check(self, issuer: IssuerRuntime) -> bool:
        """Swap in a changed certificate/key pair if it checks out; True when swapped."""
        config = issuer.config
        stamp = self._stamp(config)
        if stamp == self._seen.get(issuer.name) or config.responder_certificate is None:
            return False
        self._seen[issuer.name] = stamp
        try:
            cert = x509.load_pem_x509_certificate(config.responder_certificate.read_bytes())
            signer: Signer = issuer.identity.signer
            if config.hsm is None and config.responder_key is not None:
                signer = SoftwareSigner.from_pem_file(
                    config.responder_key,
                    passphrase_file=config.key_passphrase_file,
                    passphrase_env=config.key_passphrase_env,
                    rsa_padding=config.rsa_padding,  # type: ignore[arg-type]
                )
            identity = check_certificate_for(issuer.identity.issuer, cert, signer)
        except (ResponderConfigError, ValueError, OSError) as exc:
            metrics.RESPONDER_RELOAD_FAILURES.labels(issuer.name).inc()
            log.error("issuer %s: new responder certificate not used: %s", issuer.name, exc)
            self._pending.append(
                ("key.responder_rejected", {"issuer": issuer.name, "reason": str(exc)})
            )
            return False
        issuer.identity = identity
        self._pending.append(
            ("key.responder_changed", {"issuer": issuer.name, **cert_summary(cert)})
        )
        log.info(
            "issuer %s: now signing with responder certificate serial %x (notAfter %s)",
            issuer.name,
            cert.serial_number,
            cert.not_valid_after_utc.isoformat(),
        )
        return True


def hsm_key_ref(hsm: HsmConfig) -> Pkcs11KeyRef:
    """The configured place of a PKCS#11 key, in the form the signer opens it."""
    return Pkcs11KeyRef(
        hsm.module,
        key_label=hsm.key_label,
        key_id=hsm.key_id,
        token_label=hsm.token_label,
        token_serial=hsm.token_serial,
        pin_file=hsm.pin_file,
        pin_env=hsm.pin_env,
    )
