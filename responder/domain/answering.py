"""What a single OCSP answer says for a certificate record (RFC 6960 4.2.1, BR 4.9.9)."""

from ..ocsp import CertStatus, SingleAnswer
from .records import CertRecord, Status


def single_for_record(
    cert_id: bytes, record: CertRecord | None, this_update: int, next_update: int
) -> SingleAnswer:
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
