"""The checks a CRL passes before it is published, pure: bytes and values in,
warnings or a PublishRefused out, no I/O and no event loop.

Nothing reaches an origin unless: the signature verifies under the issuer's key, the CRL
number grew past the one published, no entry of the published CRL disappeared before its
retention ended, thisUpdate is not in the future, nextUpdate is within 10 days (BR 7.2,
RFC 5280 section 5.1.2.5), and the size is within limits (a warning above 10 MB).

`inspect_crl` is what runs in the checking process (checker.py); this module imports
only cryptography, so that process starts in a tenth of a second. The DER walkers read
a published CRL's number and serials without a parse that holds the GIL for the whole
list (publish.py and generator.py use them on the event loop's side).
"""

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

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


def spki_of(key: CertificateIssuerPublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def refuse_drops(missing: list[int], checks: Checks) -> None:
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
