"""The runbook's restore-from-backup procedure (docs/runbook.md): the store goes back to a
backup, and the events applied since are replayed from the audit log with
`revocd audit export-events ... | revocd push --file -`. Nothing acknowledged is lost."""

import shutil
import subprocess
import sys
import time

from responder.audit.log import verify

from ..served import TOKENS, now_iso, start_served

BEFORE, AFTER, NEW = 0xB4C0001, 0xB4C0002, 0xB4C0003


def issued(serial):
    return {"type": "issued", "issuer": "alpha", "serial": f"{serial:x}", "not_after": now_iso(9e6)}


def revoked(serial):
    return {
        "type": "revoked",
        "issuer": "alpha",
        "serial": f"{serial:x}",
        "revoked_at": now_iso(-60),
        "reason": "keyCompromise",
    }


def status_of(served, serial):
    code, record, _ = served.control("GET", f"/v1/issuers/alpha/certificates/{serial:x}")
    return record.get("status") if code == 200 else code


def test_restore_then_replay_from_the_audit_log(tmp_path, test_pki):
    d = tmp_path / "svc"
    served = start_served(d, test_pki, workers=1)
    try:
        assert served.push(issued(BEFORE), issued(AFTER), revoked(BEFORE))[0] == 200
    finally:
        assert served.proc.stop() == 0, served.proc.output[-4000:]
    backup = tmp_path / "backup"
    shutil.copytree(d / "state" / "valkey", backup)  # the nightly store backup
    time.sleep(1.1)
    backup_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    served = start_served(d, test_pki, workers=1)
    try:
        assert served.push(revoked(AFTER), issued(NEW))[0] == 200  # acknowledged...
    finally:
        assert served.proc.stop() == 0, served.proc.output[-4000:]
    shutil.rmtree(d / "state" / "valkey")  # ...then the store is lost and restored
    shutil.copytree(backup, d / "state" / "valkey")

    served = start_served(d, test_pki, workers=1)
    try:
        assert status_of(served, AFTER) == "good"  # the backup predates the revocation
        assert status_of(served, NEW) == 404
        log = d / "state" / "audit.log"
        assert verify([log]).ok
        export = subprocess.run(
            [
                sys.executable,
                "-m",
                "responder",
                "audit",
                "export-events",
                str(log),
                "--since",
                backup_time,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "2 applied events exported" in export.stderr
        token = tmp_path / "token"
        token.write_text(TOKENS["root-ra"])
        push = subprocess.run(
            [
                sys.executable,
                "-m",
                "responder",
                "push",
                "--url",
                f"http://127.0.0.1:{served.control_port}",
                "--token-file",
                str(token),
                "--file",
                "-",
            ],
            input=export.stdout,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert push.returncode == 0, push.stdout + push.stderr
        assert status_of(served, AFTER) == "revoked"
        assert status_of(served, NEW) == "good"
        assert status_of(served, BEFORE) == "revoked"
    finally:
        assert served.proc.stop() == 0, served.proc.output[-4000:]
    assert verify([d / "state" / "audit.log"]).ok
