"""Checks before a CRL is published, CRL numbers that never go backwards, the origins
(a directory, S3), and `OffLoop`, through which the generator reaches every origin.

Nothing reaches an origin unless: the signature verifies under the issuer's key, the CRL
number grew past the one published, no entry of the published CRL disappeared before its
retention ended, thisUpdate is not in the future, nextUpdate is within 10 days (BR 7.2,
RFC 5280 section 5.1.2.5), and the size is within limits (a warning above 10 MB). A refusal
is a metric and a log line, and leaves the previous CRL in place.

The origins' methods block (file reads, the checks, which parse and verify the whole
CRL, fsync, HTTP to S3): at 500k entries that was a second of a data plane that could
not answer. The generator only ever calls them through `OffLoop`, which runs each call
in a worker thread, so the event loop keeps serving while a CRL is checked and written.
"""

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import trio
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from responder.observability import metrics

log = logging.getLogger("revocd.crl")

MAX_VALIDITY = dt.timedelta(days=10) - dt.timedelta(seconds=1)
MAX_CRL_NUMBER = (1 << 159) - 1


class PublishRefused(Exception):
    """A pre-publish check failed; `check` names it."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


def crl_number(this_update: int, previous: int | None) -> int:
    """The CRL Number for a CRL made at `this_update` (Unix seconds).

    Derived from the clock in milliseconds, so a generator that lost its state (failover,
    store loss) still issues a larger number than any CRL it made before; and never below
    the last published number + 1, so a clock that stepped back cannot reuse one.
    """
    number = max(this_update * 1000, (previous or 0) + 1)
    if number > MAX_CRL_NUMBER:
        raise PublishRefused("number", "CRL number beyond 20 octets")
    return number


@dataclass(frozen=True)
class Checks:
    max_validity: dt.timedelta = MAX_VALIDITY
    warn_bytes: int = 10 * 1024 * 1024
    max_bytes: int | None = None
    clock_skew: int = 60
    # Whether a serial may leave the CRL (its retention after expiry has ended).
    may_drop: Callable[[int], bool] = field(default=lambda serial: False)


def _number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        raise PublishRefused("number", "the CRL has no CRL Number") from None


def check_crl(
    new_der: bytes,
    issuer_key: CertificateIssuerPublicKeyTypes,
    previous_der: bytes | None,
    checks: Checks,
    now: float | None = None,
) -> list[str]:
    """Raise PublishRefused for a CRL that must not be published; return warnings."""
    now = time.time() if now is None else now
    warnings = []
    try:
        crl = x509.load_der_x509_crl(new_der)
    except ValueError as exc:
        raise PublishRefused("encoding", f"not a DER CRL: {exc}") from None
    if not crl.is_signature_valid(issuer_key):
        raise PublishRefused("signature", "the signature does not verify with the issuer's key")
    this_update = crl.last_update_utc
    next_update = crl.next_update_utc
    if this_update.timestamp() > now + checks.clock_skew:
        raise PublishRefused(
            "this_update", f"thisUpdate {this_update.isoformat()} is in the future"
        )
    if next_update is None:
        raise PublishRefused("validity", "the CRL has no nextUpdate")
    if next_update - this_update > checks.max_validity:
        raise PublishRefused(
            "validity", f"nextUpdate is more than {checks.max_validity} after thisUpdate"
        )
    size = len(new_der)
    if checks.max_bytes is not None and size > checks.max_bytes:
        raise PublishRefused("size", f"{size} bytes, over the limit of {checks.max_bytes}")
    if size > checks.warn_bytes:
        warnings.append(f"size: {size} bytes, over {checks.warn_bytes}; consider more shards")
    number = _number(crl)
    if previous_der is not None:
        previous = x509.load_der_x509_crl(previous_der)
        old_number = _number(previous)
        if number <= old_number:
            raise PublishRefused(
                "number", f"CRL number {number} does not grow past the published {old_number}"
            )
        now_listed = {entry.serial_number for entry in crl}
        for entry in previous:
            if entry.serial_number not in now_listed and not checks.may_drop(entry.serial_number):
                raise PublishRefused(
                    "entry_dropped",
                    f"serial {entry.serial_number:x} left the CRL before its retention ended",
                )
    return warnings


def _checked(
    issuer: str,
    name: str,
    der: bytes,
    issuer_key: CertificateIssuerPublicKeyTypes,
    current: bytes | None,
    checks: Checks,
    origin: str,
) -> None:
    try:
        for warning in check_crl(der, issuer_key, current, checks):
            log.warning("CRL %s for %s: %s", name, issuer, warning)
    except PublishRefused as exc:
        refused(issuer, name, exc, origin)
        raise


def refused(issuer: str, name: str, exc: PublishRefused, origin: str) -> None:
    metrics.CRL_PUBLISH.labels(issuer, f"refused_{exc.check}").inc()
    log.error("CRL %s for %s not published to %s: %s", name, issuer, origin, exc)


class DirectoryOrigin:
    """A directory a web server or the data plane serves: atomic write and rename."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def current(self, name: str) -> bytes | None:
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None

    def publish(
        self,
        issuer: str,
        name: str,
        der: bytes,
        issuer_key: CertificateIssuerPublicKeyTypes,
        checks: Checks,
    ) -> Path:
        """Check against what is published now, then replace it whole; raise on refusal."""
        _checked(issuer, name, der, issuer_key, self.current(name), checks, "directory")
        target = self.put(name, der)
        metrics.CRL_PUBLISH.labels(issuer, "published").inc()
        log.info("CRL %s for %s published (%d bytes)", name, issuer, len(der))
        return target

    def put(self, name: str, data: bytes) -> Path:
        target = self.directory / name
        tmp = self.directory / f".{name}.tmp"
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        return target


class S3Origin:
    """S3-compatible object storage. Every write is conditional on what was read: If-Match
    the ETag of the CRL the checks compared against (If-None-Match * for the first), so of
    two generators racing, one wins and the other is refused rather than overwriting."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix
        self.client: Any = client or boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region
        )

    def _key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def current_with_etag(self, name: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        try:
            found = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return found["Body"].read(), found["ETag"]

    def current(self, name: str) -> bytes | None:
        found = self.current_with_etag(name)
        return None if found is None else found[0]

    def publish(
        self,
        issuer: str,
        name: str,
        der: bytes,
        issuer_key: CertificateIssuerPublicKeyTypes,
        checks: Checks,
    ) -> str:
        from botocore.exceptions import ClientError

        found = self.current_with_etag(name)
        _checked(issuer, name, der, issuer_key, found[0] if found else None, checks, "s3")
        condition = {"IfMatch": found[1]} if found else {"IfNoneMatch": "*"}
        try:
            put = self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(name),
                Body=der,
                ContentType="application/pkix-crl",
                CacheControl="max-age=300, public, no-transform",
                **condition,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                error = PublishRefused("race", "another generator published this CRL first")
                refused(issuer, name, error, "s3")
                raise error from None
            raise
        metrics.CRL_PUBLISH.labels(issuer, "published").inc()
        log.info(
            "CRL %s for %s published to s3://%s/%s", name, issuer, self.bucket, self._key(name)
        )
        etag: str = put["ETag"]
        return etag

    def put(self, name: str, data: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(name), Body=data, ContentType="application/json"
        )


class Origin(Protocol):
    """Where CRLs are published; every method may block (DirectoryOrigin, S3Origin)."""

    def current(self, name: str) -> bytes | None: ...

    def publish(
        self,
        issuer: str,
        name: str,
        der: bytes,
        issuer_key: CertificateIssuerPublicKeyTypes,
        checks: Checks,
    ) -> object: ...

    def put(self, name: str, data: bytes) -> object: ...


class OffLoop:
    """One origin, each call run in a worker thread (trio.to_thread), so the checks and
    fsync of a large CRL never hold up the event loop. `label` names the origin in
    metrics and logs ("directory", "s3")."""

    def __init__(self, origin: Origin, label: str) -> None:
        self.origin = origin
        self.label = label

    async def current(self, name: str) -> bytes | None:
        return await trio.to_thread.run_sync(self.origin.current, name)

    async def publish(
        self,
        issuer: str,
        name: str,
        der: bytes,
        issuer_key: CertificateIssuerPublicKeyTypes,
        checks: Checks,
    ) -> None:
        await trio.to_thread.run_sync(self.origin.publish, issuer, name, der, issuer_key, checks)

    async def put(self, name: str, data: bytes) -> None:
        await trio.to_thread.run_sync(self.origin.put, name, data)
