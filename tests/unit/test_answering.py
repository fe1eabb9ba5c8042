"""What a record answers (responder/domain/answering.py): RFC 6960 4.2.1, BR 4.9.9."""

from responder.domain.answering import cert_status_name, single_for_record
from responder.domain.records import CertRecord, Status
from responder.ocsp import CertStatus
from responder.ocsp.types import RevocationReason

CID = b"\x30\x00"
GOOD = CertRecord(1, Status.GOOD, 1_900_000_000, 1, 0, 0)
REVOKED = CertRecord(
    1, Status.REVOKED, 1_900_000_000, 2, 0, 0, 1_790_000_000, RevocationReason.KEY_COMPROMISE
)


def test_a_serial_never_reported_as_issued_is_unknown_never_good():
    single = single_for_record(CID, None, 10, 20)
    assert single.status is CertStatus.UNKNOWN and cert_status_name(None) == "unknown"


def test_good_and_revoked_records_say_so_with_the_revocation_time_and_reason():
    good = single_for_record(CID, GOOD, 10, 20)
    assert (good.status, good.this_update, good.next_update) == (CertStatus.GOOD, 10, 20)
    revoked = single_for_record(CID, REVOKED, 10, 20)
    assert revoked.status is CertStatus.REVOKED
    assert (revoked.revoked_at, revoked.reason) == (1_790_000_000, RevocationReason.KEY_COMPROMISE)
    assert [cert_status_name(r) for r in (GOOD, REVOKED)] == ["good", "revoked"]


def test_a_record_revoked_before_its_issuance_was_reported_is_still_revoked():
    early = CertRecord(1, Status.REVOKED, None, 1, 0, 0, 1_790_000_000, RevocationReason.SUPERSEDED)
    assert single_for_record(CID, early, 10, 20).status is CertStatus.REVOKED


def cid(alg: int, name: bytes, key: bytes):
    from responder.ocsp.types import CertID

    return CertID(alg, name, key, 1, b"")


def test_the_issuer_is_the_one_every_cert_id_names_else_unauthorized():
    from responder.domain.answering import issuer_of

    issuers = {(1, b"n1", b"k1"): "alpha", (1, b"n2", b"k2"): "beta"}
    assert issuer_of([cid(1, b"n1", b"k1")], issuers) == "alpha"
    assert issuer_of([cid(1, b"n1", b"k1"), cid(1, b"n1", b"k1")], issuers) == "alpha"
    assert issuer_of([cid(1, b"n1", b"k1"), cid(1, b"n2", b"k2")], issuers) is None  # two
    assert issuer_of([cid(1, b"n1", b"kX")], issuers) is None  # name matches, key does not
    assert issuer_of([cid(2, b"n1", b"k1")], issuers) is None  # other hash algorithm


def test_a_nonce_is_echoed_only_under_the_echo_policy_and_then_nothing_is_cached():
    from responder.domain.answering import NoncePolicy, cacheable, echoes_nonce

    assert echoes_nonce(b"\x01" * 16, NoncePolicy.ECHO)
    assert not echoes_nonce(b"\x01" * 16, NoncePolicy.IGNORE)
    assert not echoes_nonce(None, NoncePolicy.ECHO)
    assert cacheable(1, echoes=False) and not cacheable(1, echoes=True)
    assert not cacheable(2, echoes=False)  # several CertIDs: signed for this request


def test_unknown_serials_are_unknown_or_unauthorized_by_the_issuers_choice():
    from responder.domain.answering import UnknownAnswer, unauthorized_for

    assert not unauthorized_for(None, UnknownAnswer.UNKNOWN)
    assert unauthorized_for(None, UnknownAnswer.UNAUTHORIZED)
    assert not unauthorized_for(GOOD, UnknownAnswer.UNAUTHORIZED)


def test_next_update_never_passes_not_after_nor_goes_under_the_br_minimum():
    from responder.domain.answering import capped_next_update
    from responder.domain.timing import DAY, HOUR

    t = 1_800_000_000
    week = t + 7 * DAY
    # a long-lived certificate: the schedule's nextUpdate
    assert capped_next_update(t, t + 4 * DAY, week) == t + 4 * DAY
    # a 2-day certificate: the answer ends with it
    assert capped_next_update(t, t + 4 * DAY, t + 2 * DAY) == t + 2 * DAY
    # in its last hours: 8 hours from thisUpdate (BR 4.9.10 counts inclusively)
    assert capped_next_update(t, t + 4 * DAY, t + HOUR) == t + 8 * HOUR - 1
    assert capped_next_update(t, t + 4 * DAY, None) == t + 4 * DAY
    short = CertRecord(1, Status.GOOD, t + 2 * DAY, 1, 0, 0)
    assert single_for_record(CID, short, t, t + 4 * DAY).next_update == t + 2 * DAY
    assert single_for_record(CID, None, t, t + 4 * DAY).next_update == t + 4 * DAY


def test_an_expired_certificate_is_answered_by_the_issuers_policy():
    from responder.domain.answering import ExpiredAnswer, UnknownAnswer, unauthorized_for

    expired = CertRecord(1, Status.GOOD, 1_000, 1, 0, 0)
    assert not unauthorized_for(expired, UnknownAnswer.UNKNOWN, ExpiredAnswer.LAST_STATUS, 2_000)
    assert unauthorized_for(expired, UnknownAnswer.UNKNOWN, ExpiredAnswer.UNAUTHORIZED, 2_000)
    # not yet expired, or with no known notAfter: its status
    assert not unauthorized_for(expired, UnknownAnswer.UNKNOWN, ExpiredAnswer.UNAUTHORIZED, 999)
    unknown_end = CertRecord(1, Status.REVOKED, None, 1, 0, 0, 5, RevocationReason.SUPERSEDED)
    assert not unauthorized_for(unknown_end, UnknownAnswer.UNKNOWN, ExpiredAnswer.UNAUTHORIZED, 9)
