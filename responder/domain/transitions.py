"""Every status change, as one pure function: the reference the store's Lua follows.

`apply(record, event, now, crl_shard)` takes the certificate's record (None when revocd
has never heard of the serial), a validated event, the time and the CRL shard a new
record would get, and returns the record afterwards with the outcome. The rules:

- `issued` creates a `good` record. Again with the same notAfter: unchanged; with
  another: rejected. For a serial revoked before its issuance was reported (a CRL
  import), it records the notAfter, which lets the entry leave CRLs after expiry.
- `revoked` turns `good` (or unknown) into `revoked`. The same revocation again:
  unchanged. Afterwards only two changes are allowed (RFC 5280 5.3.1, BR 4.9.1.1 and
  7.2.2): to keyCompromise, whose revocation date may move earlier but never later;
  and from certificateHold to a final reason.
- `unrevoked` lifts a certificateHold, and nothing else.

Every applied change bumps the version and stamps `updated_at`; `resign` says the
stored answer no longer holds (the store deletes it and marks the serial due).
The store's Lua (store/lua/apply_events.lua) does the same, atomically per partition;
tests/unit/test_transitions_lua.py runs random event sequences through both and
requires the same records, outcomes and messages.
"""

from dataclasses import dataclass, replace

from ..ocsp.types import RevocationReason
from .events import Event, EventType, Outcome, Reject
from .records import CertRecord, Status

KEY_COMPROMISE = RevocationReason.KEY_COMPROMISE
HOLD = RevocationReason.CERTIFICATE_HOLD


@dataclass(frozen=True, slots=True)
class Transition:
    record: CertRecord | None  # the record afterwards (unchanged when not applied)
    outcome: Outcome
    message: str
    reject: Reject | None = None
    # The answer stored for the old record must go (what OCSP says changed).
    resign: bool = False

    @property
    def applied(self) -> bool:
        return self.outcome is Outcome.APPLIED


def _unchanged(record: CertRecord | None, message: str) -> Transition:
    return Transition(record, Outcome.UNCHANGED, message)


def _rejected(record: CertRecord | None, reject: Reject, message: str) -> Transition:
    return Transition(record, Outcome.REJECTED, message, reject)


def apply(record: CertRecord | None, event: Event, now: int, crl_shard: int) -> Transition:
    if event.type is EventType.ISSUED:
        return _issued(record, event, now, crl_shard)
    if event.type is EventType.REVOKED:
        return _revoked(record, event, now, crl_shard)
    return _unrevoked(record, now)


def _issued(record: CertRecord | None, event: Event, now: int, crl_shard: int) -> Transition:
    if record is None:
        new = CertRecord(event.serial, Status.GOOD, event.not_after, 1, now, crl_shard)
        # A new certificate has no answer yet: due for one at once.
        return Transition(new, Outcome.APPLIED, "issued", resign=True)
    if record.not_after is None:
        # Revoked before its issuance was reported (perhaps on hold, and lifted since):
        # what OCSP says does not change, the CRL retention does.
        new = replace(record, not_after=event.not_after, version=record.version + 1, updated_at=now)
        if record.status is Status.REVOKED:
            return Transition(new, Outcome.APPLIED, "not_after recorded for a revoked certificate")
        return Transition(new, Outcome.APPLIED, "not_after recorded")
    if record.not_after != event.not_after:
        return _rejected(
            record,
            Reject.NOT_AFTER_CONFLICT,
            f"not_after: already issued with not_after {record.not_after}",
        )
    if record.status is Status.REVOKED:
        return _unchanged(record, "already revoked")
    return _unchanged(record, "already issued")


def _revoked(record: CertRecord | None, event: Event, now: int, crl_shard: int) -> Transition:
    assert event.revoked_at is not None and event.reason is not None  # validated
    if record is None or record.status is Status.GOOD:
        new = CertRecord(
            event.serial,
            Status.REVOKED,
            # A revocation may carry notAfter; the one recorded at issuance wins.
            event.not_after if record is None or record.not_after is None else record.not_after,
            1 if record is None else record.version + 1,
            now,
            crl_shard if record is None else record.crl_shard,
            event.revoked_at,
            event.reason,
            event.invalidity_date,
        )
        return Transition(new, Outcome.APPLIED, "revoked", resign=True)
    assert record.revoked_at is not None and record.reason is not None
    if (
        record.reason == event.reason
        and record.revoked_at == event.revoked_at
        and record.invalidity_date == event.invalidity_date
    ):
        return _unchanged(record, "already revoked")
    to_compromise = event.reason is KEY_COMPROMISE and record.reason is not KEY_COMPROMISE
    off_hold = record.reason is HOLD and event.reason is not HOLD
    if not (to_compromise or off_hold):
        return _rejected(
            record,
            Reject.REASON_CHANGE,
            f"reason: already revoked at {record.revoked_at} with reason code "
            f"{int(record.reason)}; only a change to keyCompromise, or from certificateHold, "
            "is allowed",
        )
    revoked_at = event.revoked_at
    if event.reason is KEY_COMPROMISE:
        # Key compromise may date the revocation earlier, never later (BR 4.9.1.1).
        revoked_at = min(record.revoked_at, event.revoked_at)
    new = replace(
        record,
        not_after=record.not_after if record.not_after is not None else event.not_after,
        version=record.version + 1,
        updated_at=now,
        revoked_at=revoked_at,
        reason=event.reason,
        invalidity_date=(
            event.invalidity_date if event.invalidity_date is not None else record.invalidity_date
        ),
    )
    message = (
        "reason changed to keyCompromise"
        if event.reason is KEY_COMPROMISE
        else "hold made permanent"
    )
    return Transition(new, Outcome.APPLIED, message, resign=True)


def _unrevoked(record: CertRecord | None, now: int) -> Transition:
    if record is None:
        return _rejected(record, Reject.NO_RECORD, "serial: no record of this certificate")
    if record.status is Status.GOOD:
        return _unchanged(record, "not revoked")
    assert record.reason is not None
    if record.reason is not HOLD:
        return _rejected(
            record,
            Reject.NOT_ON_HOLD,
            "type: only a certificateHold revocation can be lifted "
            f"(reason code {int(record.reason)})",
        )
    new = CertRecord(
        record.serial,
        Status.GOOD,
        record.not_after,
        record.version + 1,
        now,
        record.crl_shard,
    )
    return Transition(new, Outcome.APPLIED, "hold lifted", resign=True)
