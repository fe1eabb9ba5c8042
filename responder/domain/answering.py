"""The answering rules: which issuer a request is for, what a record answers, when a
nonce is echoed, what a cache may keep (RFC 6960 4.2.1, RFC 9654, RFC 9919, BR 4.9.9).

Pure: the answer sources (responder/answers/) apply these to each request."""

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TypeVar

from ..ocsp import CertID, CertStatus, SingleAnswer
from .records import CertRecord, Status
from .timing import MIN_VALIDITY

T = TypeVar("T")


class NoncePolicy(StrEnum):
    ECHO = "echo"  # RFC 9654: a request's nonce is echoed (the answer is signed live)
    IGNORE = "ignore"  # nonces ignored: every answer may come from the cache


class UnknownAnswer(StrEnum):
    UNKNOWN = "unknown"  # RFC 6960: a serial never issued is `unknown` (BR 4.9.9)
    UNAUTHORIZED = "unauthorized"  # or an `unauthorized` error, as some CAs prefer


class ExpiredAnswer(StrEnum):
    """What a certificate past its notAfter is answered (per issuer: `expired`)."""

    LAST_STATUS = "last_status"  # its last status, as long as revocd keeps the record
    UNAUTHORIZED = "unauthorized"  # an `unauthorized` error, as for a serial never issued


IssuerKey = tuple[int, bytes, bytes]  # hash algorithm, issuer name hash, issuer key hash


def issuer_of(cert_ids: Sequence[CertID], issuers: Mapping[IssuerKey, T]) -> T | None:
    """The one issuer every CertID names (by its name and key hashes), or None: a
    request for an issuer revocd does not serve, or for two at once, is `unauthorized`
    (RFC 6960 4.2.1, RFC 9919)."""
    found: T | None = None
    for cert_id in cert_ids:
        issuer = issuers.get(
            (cert_id.hash_algorithm, cert_id.issuer_name_hash, cert_id.issuer_key_hash)
        )
        if issuer is None or (found is not None and issuer is not found):
            return None
        found = issuer
    return found


def echoes_nonce(nonce: bytes | None, policy: NoncePolicy) -> bool:
    """Whether the answer must carry the request's nonce, hence be signed now."""
    return nonce is not None and policy is NoncePolicy.ECHO


def cacheable(cert_ids: int, echoes: bool) -> bool:
    """One CertID and no nonce to echo: the answer may be cached and pre-signed
    (RFC 9919: what CDNs and stapling servers ask for)."""
    return cert_ids == 1 and not echoes


def unauthorized_for(
    record: CertRecord | None,
    unknown: UnknownAnswer,
    expired: ExpiredAnswer = ExpiredAnswer.LAST_STATUS,
    now: int = 0,
) -> bool:
    """Whether a serial revocd never heard of gets `unauthorized` instead of a signed
    `unknown` (never `good`: BR 4.9.9), or an expired certificate does, by the issuer's
    `expired` policy."""
    if record is None:
        return unknown is UnknownAnswer.UNAUTHORIZED
    return (
        expired is ExpiredAnswer.UNAUTHORIZED
        and record.not_after is not None
        and record.not_after < now
    )


def capped_next_update(this_update: int, next_update: int, not_after: int | None) -> int:
    """An answer's nextUpdate for a certificate that ends at `not_after`: never past the
    certificate's own end (stapling servers such as Caddy refuse an answer that outlives
    the certificate, and nothing is left to say about it after), but never a validity
    under the BR 4.9.10 minimum of 8 hours either: in its last 8 hours a certificate's
    answer runs 8 hours from thisUpdate."""
    if not_after is None or not_after >= next_update:
        return next_update
    return max(not_after, this_update + MIN_VALIDITY - 1)


def single_for_record(
    cert_id: bytes, record: CertRecord | None, this_update: int, next_update: int
) -> SingleAnswer:
    """The SingleResponse a record answers; its nextUpdate capped by capped_next_update."""
    if record is not None:
        next_update = capped_next_update(this_update, next_update, record.not_after)
    if record is None:
        # BR 4.9.9: a serial never reported as issued is never `good`.
        return SingleAnswer(cert_id, CertStatus.UNKNOWN, this_update, next_update)
    if record.status is Status.REVOKED:
        assert record.revoked_at is not None
        return SingleAnswer(
            cert_id,
            CertStatus.REVOKED,
            this_update,
            next_update,
            revoked_at=record.revoked_at,
            reason=record.reason,
        )
    return SingleAnswer(cert_id, CertStatus.GOOD, this_update, next_update)


def cert_status_name(record: CertRecord | None) -> str:
    if record is None:
        return "unknown"
    return "revoked" if record.status is Status.REVOKED else "good"
