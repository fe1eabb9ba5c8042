"""The SIEM formats (responder/siem/formats.py): RFC 5424 messages with the record's
seq and hash in structured data, octet-counted framing, CEF escaping, the OCSF shape,
and the severity each kind of record carries."""

import json
import re

from hypothesis import given
from hypothesis import strategies as st

from responder.config.model import SiemFormat
from responder.siem.formats import (
    Severity,
    cef,
    ocsf,
    octet_counted,
    severity,
    syslog_message,
)

RECORD = {
    "seq": 41,
    "time": "2026-12-01T10:00:00.123Z",
    "kind": "anomaly.blocked_key",
    "host": "ocsp-1",
    "pid": 812,
    "prev": "a" * 64,
    "hash": "b" * 64,
    "issuer": "alpha",
    "serial": "b2",
    "token": "ra",
    "source": "10.0.0.7",
}
# RFC 5424 6: HEADER SP STRUCTURED-DATA [SP MSG]
HEADER = re.compile(
    rb"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\[revocd@32473 seq=\"(\d+)\" hash=\"(\w+)\"\]) "
)


def test_a_syslog_message_is_rfc5424_with_seq_and_hash():
    msg = syslog_message(RECORD, SiemFormat.JSON, facility=13)
    m = HEADER.match(msg)
    assert m is not None
    assert int(m.group(1)) == 13 * 8 + 2  # log audit, critical: a blocked key
    assert m.group(2) == b"2026-12-01T10:00:00.123Z" and m.group(3) == b"ocsp-1"
    assert m.group(6) == b"anomaly.blocked_key" and m.group(8) == b"41"
    body = msg[m.end() :]
    assert body.startswith(b"\xef\xbb\xbf")
    assert json.loads(body[3:]) == RECORD


@given(st.binary(min_size=1, max_size=5000))
def test_octet_counting_frames_any_message(message):
    framed = octet_counted(message)
    length, _, rest = framed.partition(b" ")
    assert int(length) == len(rest) and rest == message


def test_cef_escapes_and_names_the_record():
    tricky = {**RECORD, "kind": "event.applied", "source": "a=b|c\\d\ne"}
    line = cef(tricky)
    head = line.split("|")
    assert head[:3] == ["CEF:0", "revocd", "revocd"] and head[4] == "event.applied"
    assert "externalId=41" in line and "cs2=alpha" in line
    assert "src=a\\=b|c\\\\d\\ne" in line  # extension values escape = \ and newlines
    assert "\n" not in line


def test_ocsf_keeps_the_record_whole():
    shaped = ocsf(RECORD)
    assert shaped["class_uid"] == 2004 and shaped["severity_id"] == 5
    assert shaped["metadata"]["uid"] == f"41:{'b' * 64}"
    assert shaped["unmapped"] == RECORD
    assert ocsf({**RECORD, "kind": "event.applied"})["class_uid"] == 6003


def test_severities():
    assert severity("anomaly.blocked_key") is Severity.CRITICAL
    assert severity("anomaly.revocation_burst") is Severity.ERROR
    assert severity("anomaly.mass_expiry") is Severity.WARNING
    assert severity("anomaly.something_new") is Severity.WARNING
    assert severity("event.applied") is Severity.INFO
    assert severity("event.rejected") is Severity.NOTICE


def test_the_reader_follows_the_log_across_rotations_from_its_cursor(tmp_path):
    from responder.audit.log import AuditLog
    from responder.siem.exporter import Cursor, read_after

    path = tmp_path / "audit.log"
    log = AuditLog(path, max_bytes=64 * 1024, fsync=False)
    for i in range(2000):
        log.write("event.applied", serial=format(i, "x"), padding="x" * 100)
    assert len(list(tmp_path.glob("audit.log.*-*"))) >= 3  # rotated several times
    cursor, seen = Cursor(), []
    while True:
        batch = read_after(path, cursor, 333)
        if not batch:
            break
        seen += [r["seq"] for r, _, _ in batch]
        last, inode, offset = batch[-1]
        cursor = Cursor(last["seq"], last["hash"], inode, offset)
        cursor.save(tmp_path / "cursor")
        cursor = Cursor.load(tmp_path / "cursor")
    records = max(seen) + 1
    assert seen == list(range(records)) and records >= 2000
    # a line still being written is left for the next read
    with open(path, "ab") as f:
        f.write(b'{"seq": 999999, "kind": "torn')
    assert read_after(path, cursor, 10) == []
