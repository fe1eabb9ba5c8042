"""What a CA tells revocd about a certificate, and what applying it did."""

from dataclasses import dataclass
from enum import StrEnum

from ..ocsp.types import RevocationReason
from .facts import CertFacts


class EventType(StrEnum):
    ISSUED = "issued"
    REVOKED = "revoked"
    UNREVOKED = "unrevoked"  # lifts a certificateHold, where the issuer's policy allows


@dataclass(frozen=True, slots=True)
class Event:
    """A validated event (responder/ingest.py turns JSON into these). Times are Unix
    seconds; a `revoked` event always carries a reason (unspecified by default)."""

    type: EventType
    issuer: str
    serial: int
    not_after: int | None = None
    revoked_at: int | None = None
    reason: RevocationReason | None = None
    invalidity_date: int | None = None
    # Inventory facts of an `issued` event (inventory/facts.py), kept beside the record;
    # the status rules never read them.
    facts: CertFacts | None = None


class Outcome(StrEnum):
    APPLIED = "applied"  # the record changed
    UNCHANGED = "unchanged"  # the same event again: nothing to do, and acknowledged
    REJECTED = "rejected"  # against the rules; the message starts with the field
    FAILED = "failed"  # not confirmed durable by the store: not acknowledged, send again


class Reject(StrEnum):
    """Why an event was rejected by the status rules (validation rejects earlier)."""

    NOT_AFTER_CONFLICT = "not_after_conflict"  # issued again with another notAfter
    REASON_CHANGE = "reason_change"  # a revocation may only move to keyCompromise or off hold
    NO_RECORD = "no_record"  # unrevoked for a serial never seen
    NOT_ON_HOLD = "not_on_hold"  # unrevoked for a final revocation
