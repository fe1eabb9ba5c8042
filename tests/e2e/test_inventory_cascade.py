"""The inventory and the key-compromise cascade through the control plane of a running
revocd, with three issuers: certificates registered whole, queries by owner, key and
expiry, pages; revoke-by-key as a dry run, scoped by token, applied, run again; the key
blocked and a later issuance with it reported; the CLI's cascade."""

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from responder.inventory.facts import spki_sha256
from responder.testing import pki

from ..served import now_iso, start_served

pytestmark = pytest.mark.slow


def load_issuer(d: Path, name: str) -> pki.Issued:
    cert = x509.load_pem_x509_certificate((d / f"{name}.pem").read_bytes())
    key = serialization.load_pem_private_key((d / f"{name}.key").read_bytes(), None)
    return pki.Issued(cert, key)  # type: ignore[arg-type]


def whole(issuer: str, leaf: pki.Issued, **labels: str) -> dict:
    der = leaf.cert.public_bytes(serialization.Encoding.DER)
    return {
        "type": "issued",
        "issuer": issuer,
        "certificate": base64.b64encode(der).decode(),
        **labels,
    }


def test_inventory_and_key_compromise_cascade(tmp_path, test_pki):
    d = tmp_path / "svc"
    d.mkdir()
    gamma = pki.make_intermediate("gamma issuer", test_pki.root)
    gamma.write(d / "gamma.pem", d / "gamma.key")
    extra = """
[issuers.gamma]
certificate = "gamma.pem"
key = "gamma.key"
partitions = 4
"""
    served = start_served(d, test_pki, workers=1, extra=extra)
    try:
        alpha, beta = test_pki.issuer, load_issuer(d, "beta")
        shared = pki.new_key()
        a1 = pki.make_leaf(alpha, 0xA1, "a1.test", key=shared)
        a2 = pki.make_leaf(alpha, 0xA2, "a2.test", key=shared)
        a3 = pki.make_leaf(alpha, 0xA3, "a3.test")  # another key
        b1 = pki.make_leaf(beta, 0xB1, "b1.test", key=shared)
        g1 = pki.make_leaf(gamma, 0x61, "g1.test", key=shared)
        k = spki_sha256(a1.cert)
        events = [
            whole("alpha", a1, owner="payments", profile="tls-server"),
            whole("alpha", a2, owner="payments"),
            whole("alpha", a3, owner="search"),
            whole("beta", b1, owner="mail"),
            whole("gamma", g1),
            # an expired certificate with the key, facts given directly
            {
                "type": "issued",
                "issuer": "gamma",
                "serial": "62",
                "not_after": now_iso(-86400),
                "spki_sha256": k,
                "owner": "payments",
            },
            {
                "type": "revoked",
                "issuer": "alpha",
                "serial": "a2",
                "revoked_at": now_iso(-7200),
                "reason": "superseded",
            },
        ]
        status, body = served.push(*events)
        assert status == 200, body

        # a certificate another issuer signed is refused, naming the field
        status, body = served.push(whole("alpha", b1))
        assert status == 422
        assert body["results"][0]["message"].startswith("certificate: its issuer name")
        forged = pki.make_leaf(pki.make_intermediate("test issuer", test_pki.root), 0xF0, "f")
        status, body = served.push(whole("alpha", forged))
        assert "does not verify" in body["results"][0]["message"]

        # the facts, derived from the certificate
        status, found, _ = served.control("GET", "/v1/inventory?issuer=alpha&owner=payments")
        assert status == 200
        by_serial = {c["serial"]: c for c in found["certificates"]}
        assert set(by_serial) == {"a1", "a2"}
        facts = by_serial["a1"]["facts"]
        assert facts["spki_sha256"] == k and facts["sans"] == ["dns:a1.test"]
        assert facts["subject"] == "CN=a1.test" and facts["profile"] == "tls-server"
        assert facts["sha256"] == a1.cert.fingerprint(hashes.SHA256()).hex()
        assert by_serial["a2"]["state"] == "revoked"
        # by key across issuers; expiring within 100 days; pages of one
        status, found, _ = served.control("GET", f"/v1/inventory?spki_sha256={k}")
        assert {(c["issuer"], c["serial"]) for c in found["certificates"]} == {
            ("alpha", "a1"),
            ("alpha", "a2"),
            ("beta", "b1"),
            ("gamma", "61"),
            ("gamma", "62"),
        }
        status, found, _ = served.control("GET", "/v1/inventory?status=expired")
        assert [c["serial"] for c in found["certificates"]] == ["62"]
        seen, cursor = [], ""
        while True:
            status, page, _ = served.control(
                "GET", "/v1/inventory?expires_within_days=100&status=valid&limit=1" + cursor
            )
            assert status == 200
            seen += [(c["issuer"], c["serial"]) for c in page["certificates"]]
            if not page["next_cursor"]:
                break
            cursor = "&cursor=" + page["next_cursor"]
        assert sorted(seen) == sorted(
            [("alpha", "a1"), ("alpha", "a3"), ("beta", "b1"), ("gamma", "61")]
        )
        # scoped: the alpha token cannot read beta
        status, found, _ = served.control("GET", "/v1/inventory?issuer=beta", token="alpha-ra")
        assert status == 400 and found["error"].startswith("issuer:")
        status, found, _ = served.control("GET", "/v1/inventory?colour=red")
        assert status == 400 and found["error"].startswith("colour:")

        # dry run (the default) with the alpha token: only alpha, nothing changes
        status, plan, _ = served.control(
            "POST", "/v1/revoke-by-key", {"spki_sha256": k}, token="alpha-ra"
        )
        assert status == 200 and plan["dry_run"] is True
        assert {c["serial"]: c["action"] for c in plan["certificates"]} == {
            "a1": "revoke",
            "a2": "to_key_compromise",
        }
        assert served.control("GET", "/v1/issuers/alpha/certificates/a1")[1]["status"] == "good"
        assert served.control("GET", "/v1/blocked-keys")[1]["blocked_keys"] == []

        # applied with the alpha token: alpha only; beta and gamma untouched
        status, done, _ = served.control(
            "POST", "/v1/revoke-by-key", {"spki_sha256": k, "apply": True}, token="alpha-ra"
        )
        assert status == 200 and done["newly_blocked"] is True
        assert sorted(r["serial"] for r in done["results"] if r["result"] == "applied") == [
            "a1",
            "a2",
        ]
        a1_now = served.control("GET", "/v1/issuers/alpha/certificates/a1")[1]
        a2_now = served.control("GET", "/v1/issuers/alpha/certificates/a2")[1]
        assert a1_now["status"] == "revoked" and a1_now["reason"] == "keyCompromise"
        assert a1_now["facts"]["spki_sha256"] == k  # the record names its facts too
        assert a2_now["reason"] == "keyCompromise"
        # the earlier date kept (RFC 5280 5.3.1)
        assert a2_now["revoked_at"] < a1_now["revoked_at"]
        assert served.control("GET", "/v1/issuers/beta/certificates/b1")[1]["status"] == "good"
        assert served.control("GET", "/v1/issuers/alpha/certificates/a3")[1]["status"] == "good"

        # with the all-issuer token: the rest; the expired one left alone
        status, done, _ = served.control(
            "POST",
            "/v1/revoke-by-key",
            {"certificate": whole("beta", b1)["certificate"], "apply": True},
        )
        assert status == 200 and done["newly_blocked"] is False
        assert done["counts"] == {"revoke": 2, "to_key_compromise": 0, "already": 2, "expired": 1}
        for issuer, serial in (("beta", "b1"), ("gamma", "61")):
            record = served.control("GET", f"/v1/issuers/{issuer}/certificates/{serial}")[1]
            assert record["reason"] == "keyCompromise"
        assert served.control("GET", "/v1/issuers/gamma/certificates/62")[1]["status"] == "good"

        # idempotent: nothing left to do, nothing sent
        status, again, _ = served.control(
            "POST", "/v1/revoke-by-key", {"spki_sha256": k, "apply": True}
        )
        assert again["counts"] == {"revoke": 0, "to_key_compromise": 0, "already": 4, "expired": 1}
        assert again["results"] == []
        versions = served.control("GET", "/v1/issuers/alpha/certificates/a1")[1]["version"]
        assert versions == a1_now["version"]

        # the key is blocked; a later issuance with it is applied and reported
        blocked = served.control("GET", "/v1/blocked-keys")[1]["blocked_keys"]
        assert [b["spki_sha256"] for b in blocked] == [k]
        late = pki.make_leaf(beta, 0xB2, "b2.test", key=shared)
        status, body = served.push(whole("beta", late))
        assert status == 200 and body["results"][0]["blocked_key"] == k
        audit = [json.loads(x) for x in (d / "state" / "audit.log").read_text().splitlines()]
        anomaly = [r for r in audit if r["kind"] == "anomaly.blocked_key"]
        assert anomaly and anomaly[0]["serial"] == "b2" and anomaly[0]["issuer"] == "beta"
        assert any(r["kind"] == "cascade.applied" for r in audit)
        # an issuance sent whole is recorded by its certificate's digest, with its serial
        a1_issued = next(
            r for r in audit if r["kind"] == "event.applied" and r.get("serial") == "a1"
        )
        assert "certificate" not in a1_issued["event"]
        assert a1_issued["event"]["certificate_sha256"] == facts["sha256"]
        metrics = served.control("GET", "/metrics", token=None)[1]["raw"]
        assert 'revocd_blocked_key_issuances_total{issuer="beta"} 1.0' in metrics
        assert 'revocd_key_cascade_revocations_total{issuer="alpha"} 2.0' in metrics

        # the CLI: a dry run by default, then applied, for the other key
        other = spki_sha256(a3.cert)
        a3_file = d / "a3.pem"
        a3_file.write_bytes(a3.cert_pem)
        cmd = [
            sys.executable,
            "-m",
            "responder",
            "revoke-by-key",
            "-c",
            str(d / "revocd.toml"),
            "--certificate",
            str(a3_file),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["counts"]["revoke"] == 1 and "dry run" in out.stderr
        assert served.control("GET", "/v1/issuers/alpha/certificates/a3")[1]["status"] == "good"
        out = subprocess.run([*cmd, "--apply"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["spki_sha256"] == other
        record = served.control("GET", "/v1/issuers/alpha/certificates/a3")[1]
        assert record["reason"] == "keyCompromise"
    finally:
        served.proc.stop()
