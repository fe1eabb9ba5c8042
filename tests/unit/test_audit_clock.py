"""Audit records carry the injected clock's time, and the chain holds across them."""

from responder.audit.log import AuditLog, time_text, verify

NOW = 1_800_000_000.25  # 2027-01-15T08:00:00.250Z


def test_records_are_stamped_by_the_clock_and_verify(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(path, fsync=False, clock=lambda: NOW)
    first = log.write("event.applied", serial="11")
    second = log.write("event.applied", serial="12")
    assert first["time"] == second["time"] == "2027-01-15T08:00:00.250Z" == time_text(NOW)
    assert second["prev"] == first["hash"]
    result = verify([path])
    assert result.ok and result.records == 2, result.errors
