"""The audit log exported to a real rsyslog over TCP and TLS (RFC 5425), and to a file
as OCSF lines: every record arrives once and in order, across a revocd restart (with a
batch in flight), a collector that is down for a while, one frozen, and a collector
restart."""

import json
import time
from pathlib import Path

import pytest

from ..rsyslog import Rsyslog
from ..served import now_iso, start_served

pytestmark = pytest.mark.slow


def audit_head(d: Path) -> int:
    lines = (d / "state" / "audit.log").read_bytes().rstrip(b"\n").split(b"\n")
    return int(json.loads(lines[-1])["seq"])


def issued(start: int, count: int) -> list[dict]:
    return [
        {
            "type": "issued",
            "issuer": "alpha",
            "serial": format(0x5000 + i, "x"),
            "not_after": now_iso(86400 * 30),
            "owner": "payments",
        }
        for i in range(start, start + count)
    ]


def wait_for_all(rs: Rsyslog, d: Path, ocsf: Path, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = audit_head(d)
        got = [rs.seqs("tcp"), rs.seqs("tls"), ocsf_seqs(ocsf)]
        if all(g and g[-1] >= head for g in got):
            return head
        time.sleep(0.1)
    last = [g[-1:] for g in got]
    raise AssertionError(f"not all records arrived: head {audit_head(d)}, last {last}")


def ocsf_seqs(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(json.loads(line)["unmapped"]["seq"]) for line in path.read_text().splitlines()]


def test_every_audit_record_reaches_rsyslog_once_in_order(tmp_path, test_pki):
    rs = Rsyslog(tmp_path / "rsyslog")
    rs.start()
    d = tmp_path / "svc"
    extra = f"""
[[siem]]
name = "plain"
transport = "tcp"
address = "127.0.0.1:{rs.tcp_port}"
format = "json"
batch = 50
timeout_seconds = 2

[[siem]]
name = "secure"
transport = "tls"
address = "127.0.0.1:{rs.tls_port}"
server_name = "localhost"
ca_file = "{rs.cert}"
format = "cef"

[[siem]]
name = "lines"
transport = "file"
path = "ocsf.jsonl"
format = "ocsf"
"""
    ocsf = d / "ocsf.jsonl"
    served = start_served(d, test_pki, workers=1, extra=extra)
    try:
        for i in range(5):
            assert served.push(*issued(i * 100, 100))[0] == 200
        wait_for_all(rs, d, ocsf)

        # revocd stopped while a batch of 2,000 records is being exported
        assert served.push(*issued(1000, 2000))[0] == 200
        served.proc.stop()
        served = start_served(d, test_pki, workers=1, extra=extra)
        wait_for_all(rs, d, ocsf)

        # the collector down while records are written, then back
        rs.stop()
        for i in range(3):
            assert served.push(*issued(4000 + i * 100, 100))[0] == 200
        time.sleep(1.5)  # the exporter has tried, failed and is backing off
        rs.start()
        assert served.push(*issued(5000, 100))[0] == 200
        head = wait_for_all(rs, d, ocsf, timeout=60)

        # the collector frozen (SIGSTOP) while records flow: its kernel keeps taking
        # them, the exporter waits on the rest; on SIGCONT everything is written once
        rs.freeze()
        for i in range(8):
            assert served.push(*issued(7000 + i * 1000, 1000))[0] == 200
        time.sleep(5)  # longer than timeout_seconds: the exporter gives up and reconnects
        rs.thaw()
        head = wait_for_all(rs, d, ocsf, timeout=60)
        assert "has not taken a batch" in served.proc.output  # waited, not resent

        # the collector restarted while idle, then more records
        rs.stop()
        rs.start()
        assert served.push(*issued(6000, 100))[0] == 200
        head = wait_for_all(rs, d, ocsf, timeout=60)
    finally:
        served.proc.stop()
        rs.stop()
    assert head > 2500  # the pushes, each event recorded
    everything = list(range(0, head + 1))
    assert rs.seqs("tcp")[: len(everything)] == everything
    assert rs.seqs("tls")[: len(everything)] == everything
    assert ocsf_seqs(ocsf)[: len(everything)] == everything
    # nothing after the head either (a stop record may follow it, once)
    for got in (rs.seqs("tcp"), rs.seqs("tls"), ocsf_seqs(ocsf)):
        assert len(got) == len(set(got)), "a record arrived twice"
    # the formats: JSON records, CEF with the seq as externalId, OCSF classes
    plain = rs.lines("tcp")[0].split("] ", 1)[1].lstrip("\ufeff")
    assert json.loads(plain)["seq"] == 0
    secure = rs.lines("tls")[0].split("] ", 1)[1].lstrip("\ufeff")
    assert secure.startswith("CEF:0|revocd|revocd|") and "externalId=0" in secure
    first = json.loads(ocsf.read_text().splitlines()[0])
    assert first["class_uid"] == 6003 and first["metadata"]["uid"].startswith("0:")
