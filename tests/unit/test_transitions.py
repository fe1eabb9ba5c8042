"""The status rules (responder/domain/transitions.py), rule by rule."""

import pytest

from responder.domain.events import Event, EventType, Outcome, Reject
from responder.domain.records import CertRecord, Status
from responder.domain.transitions import apply
from responder.ocsp.types import RevocationReason as R

NOW = 1_800_000_000
NA = 1_900_000_000
AT = 1_790_000_000


def issued(na: int = NA) -> Event:
    return Event(EventType.ISSUED, "t", 5, not_after=na)


def revoked(
    reason: R = R.KEY_COMPROMISE, at: int = AT, inv: int | None = None, na: int | None = None
) -> Event:
    return Event(EventType.REVOKED, "t", 5, na, at, reason, inv)


UNREVOKED = Event(EventType.UNREVOKED, "t", 5)


def run(*events: Event) -> list:
    record, out = None, []
    for i, event in enumerate(events):
        t = apply(record, event, NOW + i, 3)
        record = t.record
        out.append(t)
    return out


def test_issued_creates_good_and_is_due_for_an_answer():
    (t,) = run(issued())
    assert t.outcome is Outcome.APPLIED and t.resign
    assert t.record == CertRecord(5, Status.GOOD, NA, 1, NOW, 3)


def test_issued_again_is_unchanged_and_with_another_not_after_rejected():
    _, same, other = run(issued(), issued(), issued(NA + 1))
    assert (same.outcome, same.message) == (Outcome.UNCHANGED, "already issued")
    assert other.outcome is Outcome.REJECTED and other.reject is Reject.NOT_AFTER_CONFLICT
    assert other.message == f"not_after: already issued with not_after {NA}"
    assert other.record is not None and other.record.version == 1


def test_revocation_keeps_the_issued_not_after_and_shard():
    _, t = run(issued(), revoked(R.SUPERSEDED, na=NA + 5))
    assert t.resign and t.record is not None
    assert (t.record.status, t.record.not_after, t.record.version) == (Status.REVOKED, NA, 2)
    assert (t.record.reason, t.record.revoked_at, t.record.crl_shard) == (R.SUPERSEDED, AT, 3)


def test_revocation_before_issuance_then_issued_records_not_after_without_re_signing():
    first, then = run(revoked(R.CESSATION_OF_OPERATION), issued())
    assert first.record is not None and first.record.not_after is None
    assert then.outcome is Outcome.APPLIED and not then.resign
    assert then.message == "not_after recorded for a revoked certificate"
    assert then.record is not None and then.record.not_after == NA


def test_same_revocation_again_is_unchanged():
    _, _, again = run(issued(), revoked(inv=AT - 10), revoked(inv=AT - 10))
    assert (again.outcome, again.message) == (Outcome.UNCHANGED, "already revoked")


@pytest.mark.parametrize("first", [R.UNSPECIFIED, R.SUPERSEDED, R.CERTIFICATE_HOLD])
def test_key_compromise_may_follow_and_only_move_the_date_earlier(first):
    _, _, later, earlier = run(
        issued(),
        revoked(first, AT),
        revoked(R.KEY_COMPROMISE, AT + 60),
        revoked(R.KEY_COMPROMISE, AT - 60),
    )
    assert later.outcome is Outcome.APPLIED and later.message == "reason changed to keyCompromise"
    assert later.record is not None and later.record.revoked_at == AT  # not moved later
    # Once keyCompromise, a new date is a change of a final revocation: refused.
    assert earlier.outcome is Outcome.REJECTED and earlier.reject is Reject.REASON_CHANGE


def test_a_final_reason_cannot_change_except_to_key_compromise():
    _, _, t = run(issued(), revoked(R.SUPERSEDED), revoked(R.AFFILIATION_CHANGED))
    assert t.reject is Reject.REASON_CHANGE
    assert t.message.startswith(f"reason: already revoked at {AT} with reason code 4;")


def test_hold_made_permanent_keeps_an_earlier_invalidity_date():
    _, _, t = run(issued(), revoked(R.CERTIFICATE_HOLD, inv=AT - 5), revoked(R.SUPERSEDED, AT + 9))
    assert (t.outcome, t.message) == (Outcome.APPLIED, "hold made permanent")
    assert t.record is not None
    assert (t.record.reason, t.record.revoked_at, t.record.invalidity_date) == (
        R.SUPERSEDED,
        AT + 9,
        AT - 5,
    )


def test_hold_lifted_is_good_again_and_other_revocations_are_not():
    _, _, lifted = run(issued(), revoked(R.CERTIFICATE_HOLD), UNREVOKED)
    assert (lifted.outcome, lifted.message) == (Outcome.APPLIED, "hold lifted")
    assert lifted.resign and lifted.record == CertRecord(5, Status.GOOD, NA, 3, NOW + 2, 3)
    _, _, final = run(issued(), revoked(R.KEY_COMPROMISE), UNREVOKED)
    assert final.reject is Reject.NOT_ON_HOLD
    assert final.message == "type: only a certificateHold revocation can be lifted (reason code 1)"


def test_unrevoked_needs_a_revoked_record():
    (unknown,) = run(UNREVOKED)
    assert unknown.reject is Reject.NO_RECORD and unknown.record is None
    _, good = run(issued(), UNREVOKED)
    assert (good.outcome, good.message) == (Outcome.UNCHANGED, "not revoked")


def test_a_lifted_hold_of_a_certificate_revoked_before_issuance_then_issued():
    *_, t = run(revoked(R.CERTIFICATE_HOLD), UNREVOKED, issued())
    assert (t.outcome, t.message) == (Outcome.APPLIED, "not_after recorded")
    assert t.record is not None and t.record.status is Status.GOOD and t.record.not_after == NA
