"""What `revocd serve` writes to the audit log: who pushed which event from where, auth
failures, anomalies, key changes; and that an unwritable audit log stops events."""

import hashlib
import json
import shutil
import time

import pytest

from responder.audit.log import verify

from ..served import now_iso, start_served


@pytest.fixture(scope="module")
def served(tmp_path_factory, test_pki):
    s = start_served(
        tmp_path_factory.mktemp("audited"),
        test_pki,
        workers=1,
        extra="\n[audit]\nrevocation_burst_per_minute = 5\n",
    )
    yield s
    assert s.proc.stop() == 0, s.proc.output


def records(served) -> list[dict]:
    path = served.dir / "state" / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for_kind(served, kind: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in records(served):
            if record["kind"] == kind:
                return record
        time.sleep(0.1)
    raise AssertionError(f"no {kind} record")


def event(kind: str, serial: int, issuer: str = "alpha") -> dict:
    e = {"type": kind, "issuer": issuer, "serial": format(serial, "x")}
    if kind == "issued":
        e["not_after"] = now_iso(90 * 86400)
    else:
        e["reason"] = "keyCompromise"
        e["revoked_at"] = now_iso(-60)
    return e


def test_start_is_recorded_with_the_config_digest(served):
    started = records(served)[0]
    assert started["kind"] == "service.started" and started["seq"] == 0
    assert started["issuers"] == ["alpha", "beta"]
    assert started["tokens"] == {"alpha-ra": ["alpha"], "root-ra": ["*"]}
    assert len(started["config_sha256"]) == 64


def test_events_record_token_source_and_the_event(served):
    status, _ = served.push(event("issued", 0xA0D17), token="alpha-ra")
    assert status == 200
    status, body = served.push(event("issued", 0xA0D17, "beta"), token="alpha-ra")
    assert status == 422
    found = [r for r in records(served) if r.get("event", {}).get("serial") == "a0d17"]
    applied, rejected = found
    assert applied["kind"] == "event.applied"
    assert (applied["token"], applied["source"]) == ("alpha-ra", "127.0.0.1")
    assert applied["event"]["issuer"] == "alpha" and applied["event"]["type"] == "issued"
    assert rejected["kind"] == "event.rejected" and rejected["event"]["issuer"] == "beta"
    assert rejected["message"] == body["results"][0]["message"]
    assert verify([served.dir / "state" / "audit.log"]).ok


def test_auth_failures_and_unknown_issuers_are_anomalies(served):
    status, _, _ = served.control("POST", "/v1/events", {"events": []}, token="stolen?")
    assert status == 401
    failure = wait_for_kind(served, "anomaly.auth_failure")
    assert failure["reason"] == "unknown_token" and failure["source"] == "127.0.0.1"
    assert "stolen" not in json.dumps(failure)  # never the presented secret itself
    status, _ = served.push(event("issued", 0xBAD, "nonexistent-ca"))
    assert status == 422
    unknown = wait_for_kind(served, "anomaly.unknown_issuer")
    assert unknown["issuer"] == "nonexistent-ca" and unknown["token"] == "root-ra"


def test_revocation_burst_is_an_anomaly_once(served):
    serials = range(0xB0000, 0xB0008)
    served.push(*(event("issued", s) for s in serials))
    status, body = served.push(*(event("revoked", s) for s in serials))
    assert status == 200, body
    served.push(event("issued", 0xB0100))
    served.push(event("revoked", 0xB0100))  # same minute: not noted again
    bursts = [r for r in records(served) if r["kind"] == "anomaly.revocation_burst"]
    assert len(bursts) == 1
    assert bursts[0]["issuer"] == "alpha" and bursts[0]["revocations_last_minute"] == 8
    assert bursts[0]["threshold"] == 5
    _, body, _ = served.control("GET", "/metrics")
    assert 'revocd_audit_anomalies_total{kind="revocation_burst"} 1.0' in body["raw"]


def test_unwritable_audit_log_refuses_events_until_it_recovers(served):
    path = served.dir / "state" / "audit.log"
    first, second = event("issued", 0xC0FFEE), event("issued", 0xC0FFEF)
    saved = path.with_name("audit.saved")
    path.rename(saved)
    path.mkdir()  # a directory where the log should be: every append fails
    try:
        status, body = served.push(first)
        assert status == 503 and body["error"].startswith("audit:")
        # Now nothing is applied at all until the log can be written.
        status, body = served.push(second)
        assert status == 503
        status, _, _ = served.control("GET", "/v1/issuers/alpha/certificates/c0ffef")
        assert status == 404
        _, metrics_body, _ = served.control("GET", "/metrics")
        assert "revocd_audit_write_failures_total 2.0" in metrics_body["raw"]
    finally:
        shutil.rmtree(path)
        saved.rename(path)
    # The CA retries: the first event was stored (durably) but is audited only now.
    # The same events again: an `issued` with another notAfter would be a conflict, and
    # rebuilt events differ once the retry falls in the next second.
    status, body = served.push(first, second)
    assert status == 200 and body["counts"] == {
        "applied": 1,
        "unchanged": 1,
        "rejected": 0,
        "failed": 0,
    }
    kinds = [r["kind"] for r in records(served)[-3:]]
    assert kinds == ["audit.resumed", "event.unchanged", "event.applied"]
    assert verify([path]).ok


def test_responder_certificate_close_to_expiry_is_an_anomaly(tmp_path, test_pki):
    from responder.testing import pki

    s = start_served(
        tmp_path / "short",
        test_pki,
        workers=1,
        responder=pki.make_responder(test_pki.issuer, days=10),
        alpha_extra="validity_hours = 24\n",
    )
    try:
        record = wait_for_kind(s, "anomaly.responder_cert_expiring")
        assert record["issuer"] == "alpha"
        assert 9 * 86400 < record["seconds_left"] <= 10 * 86400
        assert record["cert_subject"].startswith("CN=")
    finally:
        assert s.proc.stop() == 0, s.proc.output[-3000:]


def test_a_changed_configuration_is_recorded_at_the_next_start(tmp_path, test_pki):
    d = tmp_path / "cfg"
    first = start_served(d, test_pki, workers=1)
    assert first.proc.stop() == 0, first.proc.output[-3000:]
    digest = hashlib.sha256(b"ops-token").hexdigest()
    second = start_served(
        d, test_pki, workers=1, extra=f'\n[tokens.ops]\nsha256 = "{digest}"\nissuers = ["beta"]\n'
    )
    try:
        change = wait_for_kind(second, "config.changed")
        assert change["role"] == "serve" and change["tokens_added"] == ["ops"]
        assert change["issuers_added"] == change["issuers_removed"] == []
        starts = [r for r in records(second) if r["kind"] == "service.started"]
        assert change["previous_sha256"] == starts[0]["config_sha256"]
        assert change["config_sha256"] == starts[1]["config_sha256"]
    finally:
        assert second.proc.stop() == 0, second.proc.output[-3000:]
