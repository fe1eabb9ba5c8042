"""The inventory's pure parts: facts derived from a certificate (and refused when the
issuer did not sign it), facts given directly, the labels' rules; the query filter and
its cursor; the expiry figures and mass-expiry detection; and the ingestor keeping
facts and naming blocked keys (on the in-memory store)."""

import base64
import datetime as dt
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from responder.config import IssuerConfig
from responder.domain.facts import CertFacts
from responder.domain.records import CertRecord, Status
from responder.ingest import EventError, Ingestor, parse_event
from responder.inventory.expiry import OTHER, UNASSIGNED, ExpiryCounter
from responder.inventory.facts import spki_sha256
from responder.inventory.query import Cursor, QueryError, parse_query
from responder.ocsp.types import RevocationReason
from responder.policy import Policy
from responder.store.memory import MemoryStore
from responder.testing import pki

DAY = 86400
NOW = 1_800_000_000
ISSUERS = {"p": IssuerConfig("p", Path("p.pem"), Policy.PRIVATE, partitions=4)}


@pytest.fixture(scope="module")
def ca():
    root = pki.make_root("unit root")
    return pki.make_intermediate("unit issuer", root), root


def der64(issued: pki.Issued) -> str:
    return base64.b64encode(issued.cert.public_bytes(serialization.Encoding.DER)).decode()


def parse(raw: dict, issuer_cert) -> object:
    return parse_event(raw, ISSUERS, NOW, certificates={"p": issuer_cert})


def test_a_certificate_gives_serial_not_after_and_facts(ca):
    issuer, _ = ca
    leaf = pki.make_leaf(issuer, 0x1234, "shop.example")
    for form in (der64(leaf), leaf.cert_pem.decode()):
        event = parse(
            {"type": "issued", "issuer": "p", "certificate": form, "owner": "web"}, issuer.cert
        )
        assert event.serial == 0x1234
        assert event.not_after == int(leaf.cert.not_valid_after_utc.timestamp())
        facts = event.facts
        assert facts.spki_sha256 == spki_sha256(leaf.cert) and facts.owner == "web"
        assert facts.sans == ("dns:shop.example",) and facts.subject == "CN=shop.example"
        assert facts.not_before == int(leaf.cert.not_valid_before_utc.timestamp())
        assert facts.key_id is not None and len(facts.key_id) == 40


def test_a_certificate_the_issuer_did_not_sign_is_refused(ca):
    issuer, root = ca
    other = pki.make_intermediate("unit issuer", root)  # same name, other key
    forged = pki.make_leaf(other, 5, "x.example")
    with pytest.raises(EventError, match=r"^certificate: the issuer's key does not verify"):
        parse({"type": "issued", "issuer": "p", "certificate": der64(forged)}, issuer.cert)
    stranger = pki.make_leaf(pki.make_intermediate("someone else", root), 6, "y.example")
    with pytest.raises(EventError, match=r"^certificate: its issuer name"):
        parse({"type": "issued", "issuer": "p", "certificate": der64(stranger)}, issuer.cert)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"serial": "99"}, "^serial: 99 but the certificate's is 1234"),
        ({"not_after": "2030-01-01T00:00:00Z"}, "^not_after: differs"),
        ({"subject": "CN=x"}, "^subject: derived from the certificate"),
        ({"owner": "bad owner"}, "^owner: at most 128"),
        ({"certificate": "not base64!"}, "^certificate: not a PEM or base64 DER"),
        ({"certificate": "QUJD"}, "^certificate: not a PEM or base64 DER"),
    ],
)
def test_bad_certificate_events_name_the_field(ca, extra, message):
    issuer, _ = ca
    leaf = pki.make_leaf(issuer, 0x1234, "shop.example")
    with pytest.raises(EventError, match=message):
        parse({"type": "issued", "issuer": "p", "certificate": der64(leaf), **extra}, issuer.cert)


def test_facts_given_directly_are_validated():
    base = {"type": "issued", "issuer": "p", "serial": "7", "not_after": "2030-01-01T00:00:00Z"}
    event = parse_event(
        {**base, "spki_sha256": "AB" * 32, "profile": "tls-server", "sans": ["dns:a.example"]},
        ISSUERS,
        NOW,
    )
    assert event.facts == CertFacts(
        spki_sha256="ab" * 32, profile="tls-server", sans=("dns:a.example",)
    )
    assert parse_event(base, ISSUERS, NOW).facts is None  # nothing given: no facts kept
    for bad, message in (
        ({"spki_sha256": "abc"}, "^spki_sha256: expected the SHA-256"),
        ({"sans": "dns:a"}, "^sans: expected a list"),
        ({"not_before": "2031-01-01T00:00:00Z"}, "^not_before: after not_after"),
        ({"key_id": "zz"}, "^key_id: expected"),
        ({"certificate": "x", "serial": "7"}, "^certificate: issuer 'p'"),
    ):
        with pytest.raises(EventError, match=message):
            parse_event({**base, **bad}, ISSUERS, NOW)


def record(serial: int, not_after: int | None, revoked: bool = False) -> CertRecord:
    if revoked:
        return CertRecord(
            serial, Status.REVOKED, not_after, 2, 0, 0, NOW - 10, RevocationReason.SUPERSEDED
        )
    return CertRecord(serial, Status.GOOD, not_after, 1, 0, 0)


def test_expiry_counts_by_threshold_and_owner():
    c = ExpiryCounter(NOW, (90, 60, 30, 7))
    c.add("a", record(1, NOW + 5 * DAY), CertFacts(owner="web"))
    c.add("a", record(2, NOW + 45 * DAY), CertFacts(owner="web"))
    c.add("a", record(3, NOW + 89 * DAY), None)
    c.add("a", record(4, NOW + 200 * DAY), CertFacts(owner="web"))
    c.add("a", record(5, NOW + 5 * DAY, revoked=True), CertFacts(owner="web"))  # not counted
    c.add("a", record(6, NOW - DAY), CertFacts(owner="web"))  # expired
    assert dict(c.states["a"]) == {"valid": 4, "revoked": 1, "expired": 1}
    assert dict(c.expiring[("a", "web")]) == {90: 2, 60: 2, 30: 1, 7: 1}
    assert dict(c.expiring[("a", UNASSIGNED)]) == {90: 1}
    summary = c.to_json(0.5, 1)
    assert summary["issuers"]["a"]["expiring"] == {"90": 3, "60": 2, "30": 1, "7": 1}


def test_owner_labels_are_bounded():
    c = ExpiryCounter(NOW, (30,))
    for i in range(10):
        for _ in range(i + 1):
            c.add("a", record(i, NOW + DAY), CertFacts(owner=f"team{i}"))
    labels = c.by_owner_label(3)
    assert {o for _, o in labels} == {"team9", "team8", "team7", OTHER}
    assert labels[("a", OTHER)][30] == sum(range(1, 8))


def test_mass_expiry_is_a_share_of_valid_certificates_on_one_day():
    c = ExpiryCounter(NOW, (90,))
    day = (NOW // DAY + 10) * DAY
    for i in range(300):  # 300 end on one day
        c.add("a", record(i, day + i), None)
    for i in range(700):  # 700 spread over a year
        c.add("a", record(1000 + i, NOW + (i % 365 + 1) * DAY + 7), None)
    found = c.mass_expiries(0.2, 100)
    assert len(found) == 1 and found[0].day == day and found[0].count >= 300
    assert 0.3 <= found[0].share < 0.31
    assert c.mass_expiries(0.35, 100) == []  # under the share
    assert c.mass_expiries(0.2, 1000) == []  # under the minimum


def test_query_parameters_and_scope():
    q = parse_query(
        {"owner": ["web"], "status": ["valid"], "expires_within_days": ["30"]}, ["a", "b"]
    )
    assert q.issuers == ("a", "b") and q.expires_within == 30 * DAY
    assert q.matches(record(1, NOW + DAY), CertFacts(owner="web"), NOW)
    assert not q.matches(record(1, NOW + 31 * DAY), CertFacts(owner="web"), NOW)
    assert not q.matches(record(1, NOW + DAY), CertFacts(owner="db"), NOW)
    assert not q.matches(record(1, NOW + DAY, revoked=True), CertFacts(owner="web"), NOW)
    for params, message in (
        ({"issuer": ["c"]}, "^issuer:"),
        ({"status": ["odd"]}, "^status: one of"),
        ({"limit": ["0"]}, "^limit:"),
        ({"expires_within_days": ["-1"]}, "^expires_within_days:"),
        ({"spki_sha256": ["12"]}, "^spki_sha256:"),
        ({"owner": ["a", "b"]}, "^owner: given more than once"),
        ({"sort": ["x"]}, "^sort: unknown parameter"),
    ):
        with pytest.raises(QueryError, match=message):
            parse_query(params, ["a", "b"])


@given(st.integers(0, 10**6), st.integers(0, 16384), st.integers(0, 2**40))
def test_cursor_round_trip(i, p, c):
    assert Cursor.decode(Cursor(i, p, c).encode()) == Cursor(i, p, c)


@pytest.mark.parametrize("bad", ["zzz", "MS4y", base64.urlsafe_b64encode(b"1.x.3").decode()])
def test_a_cursor_not_returned_is_refused(bad):
    with pytest.raises(QueryError, match=r"^cursor:"):
        Cursor.decode(bad)


def test_ingest_keeps_facts_and_names_blocked_keys(ca):
    issuer, _ = ca
    leaf = pki.make_leaf(issuer, 0x77, "blocked.example")
    key = spki_sha256(leaf.cert)

    async def main():
        store = MemoryStore(lambda: NOW)
        await store.register_issuers(ISSUERS.values())
        store.blocked[key] = {"at": NOW}
        ingest = Ingestor(store, ISSUERS, clock=lambda: NOW, certificates={"p": issuer.cert})
        results = await ingest.submit(
            [
                {"type": "issued", "issuer": "p", "certificate": der64(leaf), "owner": "a"},
                # an owner relabelled later: the derived facts stay
                {
                    "type": "issued",
                    "issuer": "p",
                    "serial": "77",
                    "not_after": dt.datetime.fromtimestamp(
                        int(leaf.cert.not_valid_after_utc.timestamp()), dt.UTC
                    ).isoformat(),
                    "owner": "b",
                },
            ]
        )
        return store, results

    store, results = trio.run(main)
    assert [r.result.value for r in results] == ["applied", "unchanged"]
    assert results[0].blocked_key == key and results[0].to_json()["blocked_key"] == key
    facts = store.facts[("p", 0x77)]
    assert facts.owner == "b" and facts.spki_sha256 == key


def test_queries_for_serials_never_issued_are_an_anomaly_per_minute_not_per_request(tmp_path):
    import json as _json

    from trio.testing import MockClock

    from responder.audit.log import AuditLog
    from responder.audit.trail import AuditTrail, watch_never_issued

    values = iter([0, 10, 5000, 9000, 9100, 20_000])
    trail = AuditTrail(AuditLog(tmp_path / "audit.log", fsync=False))

    async def main():
        with trio.move_on_after(5 * 60 + 30):
            await watch_never_issued(trail, 1000, lambda: float(next(values)))

    trio.run(main, clock=MockClock(autojump_threshold=0))
    records = [_json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    found = [r for r in records if r["kind"] == "anomaly.never_issued_queries"]
    # minutes 2, 3 and 5 are over the threshold (4,990, 4,000 and 10,900); the record is
    # written once in 5 minutes of the trail's (real) clock: one, for the first
    assert len(found) == 1
    assert found[0]["answered_unknown_last_minute"] == 4990 and found[0]["threshold"] == 1000


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], r"^body: expected a JSON object"),
        ({}, r"^spki_sha256: give the key hash or a certificate"),
        ({"spki_sha256": "ab" * 32, "certificate": "x"}, r"^spki_sha256: give the key hash"),
        ({"spki_sha256": "xyz"}, r"^spki_sha256: expected the SHA-256"),
        ({"certificate": "nope"}, r"^certificate: not a PEM or base64 DER"),
        ({"spki_sha256": "ab" * 32, "dry": True}, r"^dry: unknown field"),
    ],
)
def test_a_cascade_request_names_what_is_wrong(payload, message):
    from responder.control.inventory import InventoryError, key_of

    with pytest.raises(InventoryError, match=message) as found:
        key_of(payload)
    assert found.value.status == 400


def test_a_serials_file_names_its_bad_line():
    from responder.inventory.campaign import CampaignError, parse_serials

    assert parse_serials("# incident 42\n0a\n\n0A  # twice\nff\n") == [0x0A, 0xFF]
    with pytest.raises(CampaignError, match=r"^line 3: serial: not a hex string"):
        parse_serials("1\n2\nzz\n")


@pytest.mark.parametrize("name", ["incident-42", "2026.12.CA_1", "a" * 64])
def test_campaign_names_that_are_keys_labels_and_urls(name):
    from responder.inventory.campaign import check_name

    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a/b", "a b", "{tag}", "a" * 65, "é"])
def test_campaign_names_refused_say_what_a_name_is(name):
    from responder.inventory.campaign import CampaignError, check_name

    with pytest.raises(CampaignError, match=r"1 to 64 letters, digits"):
        check_name(name)
