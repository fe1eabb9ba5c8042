"""Publishing CRLs: the origins (a directory, S3), the checks run in a process of their
own before anything is written (checks.py says what they are), and `OffLoop`, through
which the generator reaches every origin. A refusal is a metric and a log line, and
leaves the previous CRL in place.

The origins' methods block (file reads, the checks, which parse and verify the whole
CRL, fsync, HTTP to S3): at 500k entries that was a second of a data plane that could
not answer. The generator only ever calls them through `OffLoop`, which runs each call
in a worker thread, so the event loop keeps serving while a CRL is checked and written.
"""

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import trio
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from responder.observability import metrics

from .checks import (
    MAX_CRL_NUMBER,
    MAX_VALIDITY,
    Checks,
    PublishRefused,
    crl_number,
    crl_number_of,
    crl_serials_of,
    inspect_crl,
    refuse_drops,
    spki_of,
)

__all__ = [
    "MAX_CRL_NUMBER",
    "MAX_VALIDITY",
    "Checks",
    "DirectoryOrigin",
    "OffLoop",
    "Origin",
    "PublishRefused",
    "S3Origin",
    "check_elsewhere",
    "crl_number",
    "crl_number_of",
    "crl_serials_of",
    "inspect_crl",
]

log = logging.getLogger("revocd.crl")

# Seconds the checking process may take (a million entries take about 4 s); beyond
# it the publication fails as an origin error and the next pass tries again.
CHECK_TIMEOUT = 120.0
# The checking process's command line (a benchmark prefixes it to pin it to a core).
CHECKER = [sys.executable, "-m", "crlgen.checker"]


def check_elsewhere(
    new_path: Path,
    previous_path: Path | None,
    issuer_key: CertificateIssuerPublicKeyTypes,
    checks: Checks,
) -> list[str]:
    """The checks (checks.py: inspect_crl, then the retention rule) in a process of
    their own (`python -m crlgen.checker`), reading the files; blocks the calling
    thread, never the event loop.

    cryptography's parse, iteration and signature check of a CRL hold the GIL: at a
    million entries that is 4 s of checks, 1.5 s of it in one call, which even a
    worker thread would take from the data plane. A separate process shares nothing
    with it (on one core, the kernel's scheduler still interleaves the two). A process
    per check, not a pool: CRLs are published every few minutes at most, the start-up
    (a tenth of a second) does not matter, and nothing lingers or re-imports the
    caller's main module."""
    request = {
        "new": str(new_path),
        "previous": None if previous_path is None else str(previous_path),
        "issuer_spki": spki_of(issuer_key).hex(),
        "max_validity": checks.max_validity.total_seconds(),
        "warn_bytes": checks.warn_bytes,
        "max_bytes": checks.max_bytes,
        "clock_skew": checks.clock_skew,
        "now": time.time(),
    }
    done = subprocess.run(
        CHECKER,
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=CHECK_TIMEOUT,
        check=False,
    )
    try:
        verdict = json.loads(done.stdout)
    except ValueError:
        raise RuntimeError(
            f"CRL checker exited {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}"
        ) from None
    if "refused" in verdict:
        raise PublishRefused(verdict["refused"], verdict["message"])
    refuse_drops([int(s, 16) for s in verdict["missing"]], checks)
    return list(verdict["warnings"])


def _checked(
    issuer: str,
    name: str,
    new_path: Path,
    previous_path: Path | None,
    issuer_key: CertificateIssuerPublicKeyTypes,
    checks: Checks,
    origin: str,
) -> None:
    try:
        for warning in check_elsewhere(new_path, previous_path, issuer_key, checks):
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
        """Write the new CRL beside the published one, check it against that one, then
        replace it whole (rename); on refusal the new file is removed."""
        target = self.directory / name
        tmp = self._write_tmp(name, der)
        try:
            previous = target if target.exists() else None
            _checked(issuer, name, tmp, previous, issuer_key, checks, "directory")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, target)
        metrics.CRL_PUBLISH.labels(issuer, "published").inc()
        log.info("CRL %s for %s published (%d bytes)", name, issuer, len(der))
        return target

    def _write_tmp(self, name: str, data: bytes) -> Path:
        tmp = self.directory / f".{name}.tmp"
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def put(self, name: str, data: bytes) -> Path:
        target = self.directory / name
        os.replace(self._write_tmp(name, data), target)
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
        with tempfile.TemporaryDirectory(prefix="revocd-crl-") as spool:
            new_path = Path(spool) / "new.crl"
            new_path.write_bytes(der)
            previous_path = None
            if found is not None:
                previous_path = Path(spool) / "published.crl"
                previous_path.write_bytes(found[0])
            _checked(issuer, name, new_path, previous_path, issuer_key, checks, "s3")
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
