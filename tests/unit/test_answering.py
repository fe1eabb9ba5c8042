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
