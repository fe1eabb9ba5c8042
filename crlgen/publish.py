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
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
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
        self.message = message


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


def _tlv_at(der: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `offset`."""
    if offset + 2 > len(der):
        raise ValueError("truncated DER")
    tag, first = der[offset], der[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        octets = first & 0x7F
        if octets == 0 or octets > 4 or start + octets > len(der):
            raise ValueError("bad DER length")
        length = int.from_bytes(der[start : start + octets], "big")
        start += octets
    if start + length > len(der):
        raise ValueError("truncated DER")
    return tag, start, start + length


_CRL_NUMBER = bytes.fromhex("0603551d14")


def crl_number_of(der: bytes) -> int | None:
    """The CRL Number of a DER CRL, read by walking its headers: a million entries are
    stepped over by one length, not parsed (x509.load_der_x509_crl holds the GIL for
    0.1 s to do that). None if there is no CRL Number or it is not a CRL."""
    try:
        _, cl_start, _ = _tlv_at(der, 0)  # CertificateList
        _, offset, tbs_end = _tlv_at(der, cl_start)  # TBSCertList
        while offset < tbs_end:
            tag, start, end = _tlv_at(der, offset)
            if tag == 0xA0:  # crlExtensions [0] EXPLICIT Extensions
                _, at, exts_end = _tlv_at(der, start)
                while at < exts_end:
                    _, field, ext_end = _tlv_at(der, at)  # Extension
                    if der[field : field + len(_CRL_NUMBER)] == _CRL_NUMBER:
                        tag, v_start, v_end = _tlv_at(der, field + len(_CRL_NUMBER))
                        if tag == 0x01:  # critical BOOLEAN, then extnValue
                            tag, v_start, v_end = _tlv_at(der, v_end)
                        tag, n_start, n_end = _tlv_at(der, v_start)  # the INTEGER inside
                        if tag != 0x02:
                            return None
                        return int.from_bytes(der[n_start:n_end], "big")
                    at = ext_end
                return None
            offset = end
    except ValueError:
        return None
    return None


def crl_serials_of(der: bytes) -> list[int]:
    """The serials a DER CRL lists, by walking its headers in pure Python: slower than
    cryptography's parser, but every step is short, so run in a worker thread it gives
    the GIL back to the event loop every few milliseconds (the parser holds it for the
    whole list). Raises ValueError for what is not a CRL."""
    _, cl_start, _ = _tlv_at(der, 0)  # CertificateList
    _, offset, tbs_end = _tlv_at(der, cl_start)  # TBSCertList (RFC 5280 section 5.1)
    tag, _, end = _tlv_at(der, offset)
    if tag == 0x02:  # version
        offset = end
    for _field in ("signature", "issuer", "thisUpdate"):
        offset = _tlv_at(der, offset)[2]
    serials: list[int] = []
    if offset >= tbs_end:
        return serials
    tag, _, end = _tlv_at(der, offset)
    if tag in (0x17, 0x18):  # nextUpdate (UTCTime or GeneralizedTime)
        offset = end
        if offset >= tbs_end:
            return serials
        tag, _, end = _tlv_at(der, offset)
    if tag != 0x30:
        return serials  # no revokedCertificates: crlExtensions follow
    _, at, end = _tlv_at(der, offset)
    while at < end:
        _, entry, entry_end = _tlv_at(der, at)  # userCertificate, revocationDate, ...
        _, n_start, n_end = _tlv_at(der, entry)
        serials.append(int.from_bytes(der[n_start:n_end], "big"))
        at = entry_end
    return serials


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
    warnings, missing = inspect_crl(new_der, _spki(issuer_key), previous_der, _limits(checks), now)
    _refuse_drops(missing, checks)
    return warnings


def _spki(key: CertificateIssuerPublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _limits(checks: Checks) -> tuple[dt.timedelta, int, int | None, int]:
    return checks.max_validity, checks.warn_bytes, checks.max_bytes, checks.clock_skew


def _refuse_drops(missing: list[int], checks: Checks) -> None:
    for serial in missing:
        if not checks.may_drop(serial):
            raise PublishRefused(
                "entry_dropped", f"serial {serial:x} left the CRL before its retention ended"
            )


def inspect_crl(
    new_der: bytes,
    issuer_spki: bytes,
    previous_der: bytes | None,
    limits: tuple[dt.timedelta, int, int | None, int],
    now: float | None = None,
) -> tuple[list[str], list[int]]:
    """Every check but the retention rule, which needs the generator's state: raise
    PublishRefused, or return the warnings and the serials of the previous CRL that the
    new one no longer lists (the caller decides whether each may leave).

    Plain arguments and results, so it can run in another process (crlgen/checker.py)."""
    max_validity, warn_bytes, max_bytes, clock_skew = limits
    now = time.time() if now is None else now
    warnings = []
    try:
        crl = x509.load_der_x509_crl(new_der)
    except ValueError as exc:
        raise PublishRefused("encoding", f"not a DER CRL: {exc}") from None
    issuer_key = serialization.load_der_public_key(issuer_spki)
    if not crl.is_signature_valid(issuer_key):  # type: ignore[arg-type]
        raise PublishRefused("signature", "the signature does not verify with the issuer's key")
    this_update = crl.last_update_utc
    next_update = crl.next_update_utc
    if this_update.timestamp() > now + clock_skew:
        raise PublishRefused(
            "this_update", f"thisUpdate {this_update.isoformat()} is in the future"
        )
    if next_update is None:
        raise PublishRefused("validity", "the CRL has no nextUpdate")
    if next_update - this_update > max_validity:
        raise PublishRefused("validity", f"nextUpdate is more than {max_validity} after thisUpdate")
    size = len(new_der)
    if max_bytes is not None and size > max_bytes:
        raise PublishRefused("size", f"{size} bytes, over the limit of {max_bytes}")
    if size > warn_bytes:
        warnings.append(f"size: {size} bytes, over {warn_bytes}; consider more shards")
    number = _number(crl)
    missing: list[int] = []
    if previous_der is not None:
        previous = x509.load_der_x509_crl(previous_der)
        old_number = _number(previous)
        if number <= old_number:
            raise PublishRefused(
                "number", f"CRL number {number} does not grow past the published {old_number}"
            )
        now_listed = {entry.serial_number for entry in crl}
        missing = [e.serial_number for e in previous if e.serial_number not in now_listed]
    return warnings, missing


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
    """check_crl in a process of its own (`python -m crlgen.checker`), reading the
    files; blocks the calling thread, never the event loop.

    cryptography's parse, iteration and signature check of a CRL hold the GIL: at a
    million entries that is 4 s of checks, 1.5 s of it in one call, which even a
    worker thread would take from the data plane. A separate process shares nothing
    with it (on one core, the kernel's scheduler still interleaves the two). A process
    per check, not a pool: CRLs are published every few minutes at most, the start-up
    (a fifth of a second) does not matter, and nothing lingers or re-imports the
    caller's main module."""
    request = {
        "new": str(new_path),
        "previous": None if previous_path is None else str(previous_path),
        "issuer_spki": _spki(issuer_key).hex(),
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
    _refuse_drops([int(s, 16) for s in verdict["missing"]], checks)
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
