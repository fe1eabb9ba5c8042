"""A revocation campaign of 100,000 serials, SIGKILLed part way and run again: every
certificate ends revoked once (record version 2: issued, then revoked, never a second
change), with the campaign's one revocationDate and reason; the dry run changes
nothing; the CCADB counts are right before, during and after."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from responder.config import IssuerConfig
from responder.domain.records import Status
from responder.ocsp.types import RevocationReason
from responder.store import Store

from ..store_helpers import with_store

pytestmark = pytest.mark.slow
TOTAL = 100_000


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "responder", *args]


def test_campaign_of_100k_killed_and_resumed_applies_nothing_twice(
    tmp_path: Path, test_pki, valkey_standalone
):
    issuer = f"camp{os.getpid()}"
    (tmp_path / "revocd.toml").write_text(f"""
state_dir = "state"
[store]
url = "{valkey_standalone.url}"
[issuers.{issuer}]
certificate = "{test_pki.dir / "issuer.pem"}"
key = "{test_pki.dir / "issuer.key"}"
partitions = 16
""")
    config = {issuer: IssuerConfig(issuer, test_pki.dir / "issuer.pem", partitions=16)}
    serials = [0x7000000 + i for i in range(TOTAL)]
    # 200 of them already expired: the counts name them, the campaign revokes them too
    expired = set(serials[:200])

    async def issue(store: Store, ingest) -> None:
        for start in range(0, TOTAL, 10_000):
            events = [
                {
                    "type": "issued",
                    "issuer": issuer,
                    "serial": format(s, "x"),
                    "not_after": "2020-01-01T00:00:00Z" if s in expired else "2030-01-01T00:00:00Z",
                }
                for s in serials[start : start + 10_000]
            ]
            results = await ingest.submit(events)
            assert {r.result for r in results} == {"applied"}

    with_store(valkey_standalone.url, issue, config)
    serial_file = tmp_path / "serials.txt"
    serial_file.write_text(
        "# the incident's serials\n" + "\n".join(format(s, "x") for s in serials)
    )
    cfg = str(tmp_path / "revocd.toml")
    base = ["campaign", "run", "-c", cfg, "--name", "incident-1", "--issuer", issuer]
    base += ["--serials", str(serial_file), "--reason", "superseded"]

    # dry run: counts, nothing stored, nothing revoked
    dry = subprocess.run(cli(*base), capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] is True
    assert plan["counts"] == {
        "total": TOTAL,
        "revoked": 0,
        "not_revoked": TOTAL - 200,
        "expired": 200,
        "unknown": 0,
    }

    # the real run, killed part way
    proc = subprocess.Popen(
        cli(*base, "--apply", "--rate", "20000"), stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    sent = 0
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if "sent" in line and line.startswith("campaign incident-1:"):
            sent = int(line.split(":", 1)[1].split("/")[0])
            if sent >= 30_000:
                break
        assert time.monotonic() < deadline, "the campaign made no progress"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 30_000 <= sent < TOTAL

    status = subprocess.run(
        cli("campaign", "status", "-c", cfg, "--name", "incident-1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    during = json.loads(status.stdout)[0]
    assert during["position"] >= sent and during["position"] < TOTAL
    assert 0 < during["counts"]["revoked"] < TOTAL
    assert (
        during["counts"]["revoked"] + during["counts"]["not_revoked"] + during["counts"]["expired"]
        == TOTAL
    )

    # run again: goes on from the stored position
    done = subprocess.run(
        cli("campaign", "run", "-c", cfg, "--name", "incident-1", "--apply", "--rate", "50000"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout)
    assert final["position"] == TOTAL and final["finished_at"] > 0
    assert final["counts"] == {
        "total": TOTAL,
        "revoked": TOTAL,
        "not_revoked": 0,
        "expired": 0,
        "unknown": 0,
    }
    # what the killed run had sent and the second run sent again was `unchanged`
    assert final["applied"] <= TOTAL
    assert final["rejected"] == 0 and final["failed"] == 0

    async def check(store: Store, ingest) -> list[str]:
        problems = []
        for start in range(0, TOTAL, 10_000):
            chunk = serials[start : start + 10_000]
            records = await store.get_records(issuer, chunk)
            for s in chunk:
                r = records[s]
                if r.status is not Status.REVOKED or r.version != 2:
                    problems.append(f"{s:x}: {r.status} version {r.version}")
                elif (
                    r.reason is not RevocationReason.SUPERSEDED
                    or r.revoked_at != final["revoked_at"]
                ):
                    problems.append(f"{s:x}: {r.reason} at {r.revoked_at}")
        return problems

    assert with_store(valkey_standalone.url, check, config) == []
    audit = (tmp_path / "state" / "audit.log").read_text()
    assert '"kind":"campaign.created"' in audit and '"kind":"campaign.finished"' in audit


def test_campaigns_on_the_control_plane_and_their_progress_metrics(tmp_path: Path, test_pki):
    """`GET /v1/campaigns[/{name}]` scoped by token; a bad name is a 400; the watcher
    exports each campaign's progress, and a campaign whose run was killed shows as
    unfinished with a position that no longer moves (what RevocdCampaignStalled
    watches: deploy/prometheus/alerts.test.yml)."""
    from ..served import now_iso, start_served

    d = tmp_path / "svc"
    served = start_served(d, test_pki, workers=1, extra="[inventory]\nscan_interval_seconds = 10\n")
    try:
        serials = [0xCA000 + i for i in range(40)]
        events = [
            {
                "type": "issued",
                "issuer": issuer,
                "serial": format(s, "x"),
                "not_after": now_iso(86400 * 30),
            }
            for issuer in ("alpha", "beta")
            for s in serials
        ]
        status, body = served.push(*events)
        assert status == 200 and body["counts"]["applied"] == 80, body
        cfg = str(d / "revocd.toml")
        listed = tmp_path / "serials.txt"
        # 30 issued serials and two never issued
        listed.write_text("\n".join(format(s, "x") for s in serials[:30]) + "\ndead01\ndead02\n")

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                cli("campaign", "run", "-c", cfg, *args),
                capture_output=True,
                text=True,
                timeout=120,
            )

        done = run("--name", "alpha-1", "--issuer", "alpha", "--serials", str(listed), "--apply")
        assert done.returncode == 0, done.stderr
        done = run("--name", "beta-1", "--issuer", "beta", "--serials", str(listed), "--apply")
        assert done.returncode == 0, done.stderr
        bad = run("--name", "no/such name", "--issuer", "alpha", "--serials", str(listed))
        assert bad.returncode == 2 and "--name: name 'no/such name'" in bad.stderr
        slow = run("--name", "x", "--issuer", "alpha", "--serials", str(listed), "--rate", "0.001")
        assert slow.returncode == 2 and "--rate: revocations per second, at least" in slow.stderr

        # a slow campaign, killed after its first acknowledged batch
        slow = subprocess.Popen(
            cli(
                "campaign",
                "run",
                "-c",
                cfg,
                "--name",
                "alpha-stalled",
                "--issuer",
                "alpha",
                "--serials",
                str(listed),
                "--apply",
                "--rate",
                "1",
            ),
            stderr=subprocess.PIPE,
            text=True,
        )
        assert slow.stderr is not None
        for line in slow.stderr:
            if line.startswith("campaign alpha-stalled:"):
                break
        slow.send_signal(signal.SIGKILL)
        slow.wait()

        status, body, _ = served.control("GET", "/v1/campaigns")
        assert status == 200, body
        by_name = {c["name"]: c for c in body["campaigns"]}
        assert set(by_name) == {"alpha-1", "alpha-stalled", "beta-1"}
        assert by_name["alpha-1"]["position"] == 32 and by_name["alpha-1"]["finished_at"] > 0
        stalled = by_name["alpha-stalled"]
        assert stalled["finished_at"] == 0 and 1 <= stalled["position"] < 32
        assert stalled["updated_at"] >= stalled["created_at"] > 0

        # the alpha-only token sees alpha's campaigns, and beta's is as absent as none
        status, body, _ = served.control("GET", "/v1/campaigns", token="alpha-ra")
        assert status == 200
        assert {c["name"] for c in body["campaigns"]} == {"alpha-1", "alpha-stalled"}
        status, body, _ = served.control("GET", "/v1/campaigns/beta-1", token="alpha-ra")
        assert status == 404 and body["error"] == "campaign 'beta-1': not found"
        status, body, _ = served.control("GET", "/v1/campaigns/nothing-here")
        assert status == 404
        status, body, _ = served.control("GET", "/v1/campaigns/%7Bbad%7D")
        assert status == 400 and body["error"].startswith("name '{bad}'")
        status, body, _ = served.control("POST", "/v1/campaigns/alpha-1", {})
        assert status == 405

        # the command line's status of every campaign agrees with the control plane's
        every = subprocess.run(
            cli("campaign", "status", "-c", cfg), capture_output=True, text=True, timeout=120
        )
        assert every.returncode == 0, every.stderr
        listed_by_cli = {c["name"]: c for c in json.loads(every.stdout)}
        assert set(listed_by_cli) == set(by_name)
        assert listed_by_cli["alpha-stalled"]["position"] == stalled["position"]

        status, body, _ = served.control("GET", "/v1/campaigns/alpha-1", token="alpha-ra")
        assert status == 200, body
        assert body["counts"] == listed_by_cli["alpha-1"]["counts"]
        assert body["counts"] == {
            "total": 32,
            "revoked": 32,
            "not_revoked": 0,
            "expired": 0,
            "unknown": 0,
        }
        # a revocation of a serial revocd never saw issued is applied (RFC 6960 lets a
        # responder say revoked for it), so the two unknown serials are revoked too
        assert body["rejected"] == 0 and body["applied"] == 32

        # the watcher's export (every scan_interval_seconds here): finished and stalled
        def sample(text: str, name: str, **labels: str) -> float | None:
            want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            for line in text.splitlines():
                if line.startswith(name + "{"):
                    got = ",".join(sorted(line[len(name) + 1 : line.index("}")].split(",")))
                    if got == want:
                        return float(line.rsplit(" ", 1)[1])
            return None

        deadline = time.monotonic() + 60
        while True:
            _, body, _ = served.control("GET", "/metrics", token=None)
            text = body["raw"]
            sent = sample(
                text, "revocd_campaign_serials", campaign="alpha-1", issuer="alpha", state="sent"
            )
            if (
                sent is not None
                and sample(
                    text, "revocd_campaign_finished", campaign="alpha-stalled", issuer="alpha"
                )
                is not None
            ):
                break
            assert time.monotonic() < deadline, "no campaign metrics within 60 s"
            time.sleep(1)
        assert sent == 32
        assert sample(text, "revocd_campaign_finished", campaign="alpha-1", issuer="alpha") == 1
        assert (
            sample(text, "revocd_campaign_finished", campaign="alpha-stalled", issuer="alpha") == 0
        )
        assert (
            sample(
                text,
                "revocd_campaign_updated_timestamp_seconds",
                campaign="alpha-stalled",
                issuer="alpha",
            )
            == stalled["updated_at"]
        )
        assert (
            sample(text, "revocd_campaign_serials", campaign="beta-1", issuer="beta", state="total")
            == 32
        )
    finally:
        assert served.proc.stop() == 0, served.proc.output
