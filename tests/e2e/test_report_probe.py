"""`revocd probe` and `revocd report` against `revocd demo`, as an operator runs them
from the README: a clean probe round that sees the demo's revocations revoked (and so
records the ledger's `probed` step), and the report in JSON, CSV and HTML with every
BR deadline met, the audit chain verified and an incident's counts."""

import csv
import io
import json
import subprocess
import sys

from cryptography import x509


def revocd(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "responder", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_probe_round_on_the_demo_finds_nothing_wrong(demo):
    done = revocd("probe", "-c", str(demo.dir / "revocd.toml"), "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["problems"] == []
    checks = report["checks"]
    for check in ("shard_present", "crl_signature", "ccadb_list", "ocsp_signature", "ocsp_agrees"):
        assert checks.get(check, 0) >= 1, checks
    # every recent revocation was fetched through the public URL and seen revoked
    again = json.loads(revocd("probe", "-c", str(demo.dir / "revocd.toml"), "--once").stdout)
    assert report["revocations_seen_revoked"] >= 1
    assert again["revocations_seen_revoked"] == 0  # recorded once, not probed again


def test_report_json_csv_html_for_the_demo(demo, tmp_path):
    config = str(demo.dir / "revocd.toml")
    revocd("probe", "-c", config, "--once")
    done = revocd("report", "-c", config, "--since", "1d")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["revocations"] >= 1
    br = report["br_deadlines"]
    assert br["ocsp_within_24h"] == report["revocations"] and br["ocsp_late"] == 0
    assert br["crl_within_24h"] == report["revocations"] and br["crl_late"] == 0
    assert report["audit_chain"]["ok"] is True and len(report["audit_chain"]["head_hash"]) == 64
    assert set(report["config_digests"]) >= {"config", "issuers.demo.certificate"}
    assert report["crl_publications"]["demo"], "no CRL publication recorded"
    revoked = x509.load_pem_x509_certificate(demo.cert("revoked").read_bytes()).serial_number
    mine = [t for t in report["timelines"] if t["serial"] == format(revoked, "x")]
    assert len(mine) == 1
    steps = {s["step"] for s in mine[0]["steps"]}
    assert {"crl:directory", "served", "probed"} <= steps, steps

    rows = list(
        csv.DictReader(io.StringIO(revocd("report", "-c", config, "--format", "csv").stdout))
    )
    assert len(rows) == report["revocations"]
    assert all(r["br_ocsp_within_24h"] == "yes" for r in rows)

    page = tmp_path / "report.html"
    assert revocd("report", "-c", config, "--format", "html", "-o", str(page)).returncode == 0
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "<script" not in html
    assert report["audit_chain"]["head_hash"] in html and "verified" in html
    assert "http://" not in html.split("<body>", 1)[1].replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_incident_counts(demo, tmp_path):
    good = x509.load_pem_x509_certificate(demo.cert("good").read_bytes()).serial_number
    revoked = x509.load_pem_x509_certificate(demo.cert("revoked").read_bytes()).serial_number
    unknown = x509.load_pem_x509_certificate(demo.cert("unknown").read_bytes()).serial_number
    serials = tmp_path / "incident.txt"
    serials.write_text(f"# incident 42\n{good:x}\ndemo:{revoked:x}\n{unknown:x}\n")
    done = revocd(
        "report", "-c", str(demo.dir / "revocd.toml"), "--serials", str(serials), "--issuer", "demo"
    )
    assert done.returncode == 0, done.stderr
    incident = json.loads(done.stdout)["incident"]
    assert incident["certificates"] == 3
    assert incident["revoked"] == 1 and incident["not_yet_revoked"] == 1
    assert incident["unknown_to_revocd"] == 1
    # one of them revoked in the last hour (the demo's start), one to go: an hour at that pace
    assert incident["revoked_last_hour"] == 1
    assert incident["expected_completion"].endswith("Z")
    bad = tmp_path / "bad.txt"
    bad.write_text("nope:12\n")
    refused = revocd("report", "-c", str(demo.dir / "revocd.toml"), "--serials", str(bad))
    assert refused.returncode == 2 and "bad.txt:1" in refused.stderr
