"""The pre-signer: every certificate gets an answer, due answers are replaced (with jitter),
changes are re-signed first, and nothing signed from an old status is stored."""

import time

import pytest
import trio
from asn1crypto import ocsp as asn1_ocsp

from responder.answers.issuers import IssuerRuntime
from responder.config import IssuerConfig
from responder.domain.timing import DAY, HOUR, Schedule, due_at
from responder.ingest import Ingestor
from responder.policy import Policy
from responder.presign import Presigner, PresignSettings
from responder.signing import ResponderIdentity, SoftwareSigner
from responder.store import PreSigned, Store

from ..store_helpers import issued, revoked


@pytest.fixture
def issuer(test_pki, tmp_path):
    name = "ps" + str(time.monotonic_ns() % 10**9)
    config = IssuerConfig(name, tmp_path, Policy.TLS, partitions=8)
    identity = ResponderIdentity(
        SoftwareSigner(test_pki.responder.key), test_pki.issuer.cert, test_pki.responder.cert
    )
    return IssuerRuntime(config, identity, Schedule(validity=4 * DAY - 1))


def status_of(der: bytes) -> str:
    basic = asn1_ocsp.OCSPResponse.load(der).basic_ocsp_response
    return basic["tbs_response_data"]["responses"][0]["cert_status"].name


def run(url, issuer, fn):
    async def main():
        async with Store.open(url) as store:
            await store.register_issuers([issuer.config])
            ingest = Ingestor(store, {issuer.name: issuer.config})
            return await fn(store, ingest)

    return trio.run(main)


def test_sweep_signs_every_unexpired_certificate(valkey_standalone, issuer):
    serials = list(range(1000, 1300))

    async def fn(store, ingest):
        await ingest.submit(
            [issued(s, issuer.name) for s in serials]
            + [issued(9999, issuer.name, "2020-01-01T00:00:00Z")]
            + [revoked(s, issuer.name) for s in serials[:10]]
        )
        presigner = Presigner(store, [issuer], PresignSettings(batch=64))
        first = await presigner.sweep()
        second = await presigner.sweep()
        answers = {s: await store.get_answer(issuer.name, s) for s in serials}
        return first, second, answers, await store.get_answer(issuer.name, 9999)

    first, second, answers, expired = run(valkey_standalone.url, issuer, fn)
    assert first == len(serials) and second == 0  # nothing due the second time
    assert expired is None
    assert {status_of(a.der) for s, a in answers.items() if s in serials[:10]} == {"revoked"}
    assert {status_of(a.der) for s, a in answers.items() if s not in serials[:10]} == {"good"}


def test_due_answers_are_replaced(valkey_standalone, issuer):
    async def fn(store, ingest):
        await ingest.submit([issued(77, issuer.name)])
        record = await store.get_record(issuer.name, 77)
        old = int(time.time()) - 4 * DAY + 8 * HOUR + 60  # re-sign time (nextUpdate - 8 h) passed
        answer = PreSigned(old, old + 4 * DAY, b"old")
        due = due_at(issuer.schedule, 77, old, old + 4 * DAY)
        await store.put_answer(issuer.name, record, answer, due)
        stored = await Presigner(store, [issuer]).sweep()
        return stored, await store.get_answer(issuer.name, 77)

    stored, answer = run(valkey_standalone.url, issuer, fn)
    assert stored == 1 and answer.der != b"old" and answer.this_update > time.time() - 3600


def test_jitter_spreads_resign_times(issuer):
    now = int(time.time())
    answer = PreSigned(now, now + 4 * DAY - 1, b"")
    refresh = issuer.schedule.refresh_at(answer.this_update, answer.next_update)
    times = {
        due_at(issuer.schedule, serial, answer.this_update, answer.next_update)
        for serial in range(1, 2000)
    }
    assert len(times) > 1500  # spread, not one instant
    assert all(refresh - (4 * DAY) // 10 <= t <= refresh for t in times)
    assert refresh == now + 4 * DAY - 1 - 8 * HOUR  # 8 h before nextUpdate (BR 4.9.10)


def test_revocation_is_re_signed_at_once(valkey_standalone, issuer):
    async def fn(store, ingest):
        await ingest.submit([issued(4242, issuer.name)])
        presigner = Presigner(store, [issuer], PresignSettings(sweep_interval=3600))
        async with trio.open_nursery() as nursery:
            await nursery.start(presigner.run)
            await trio.sleep(0.3)
            good = await store.get_answer(issuer.name, 4242)
            await ingest.submit([revoked(4242, issuer.name)])
            started = trio.current_time()
            while True:
                answer = await store.get_answer(issuer.name, 4242)
                if answer is not None and status_of(answer.der) == "revoked":
                    break
                assert trio.current_time() - started < 5, "revocation not re-signed"
                await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        return good, trio.current_time() - started

    good, elapsed = run(valkey_standalone.url, issuer, fn)
    assert good is not None and status_of(good.der) == "good"
    assert elapsed < 2


def test_batch_write_refuses_answers_signed_before_a_change(valkey_standalone, issuer):
    async def fn(store, ingest):
        await ingest.submit([issued(5150, issuer.name), issued(5151, issuer.name)])
        a = await store.get_record(issuer.name, 5150)
        b = await store.get_record(issuer.name, 5151)
        await ingest.submit([revoked(5150, issuer.name)])  # a's version is now stale
        now = int(time.time())
        stored = await store.put_answers(
            issuer.name,
            [
                (a, PreSigned(now, now + DAY, b"a"), now + HOUR),
                (b, PreSigned(now, now + DAY, b"b"), now + HOUR),
            ],
        )
        return (
            stored,
            await store.get_answer(issuer.name, 5150),
            await store.get_answer(issuer.name, 5151),
        )

    stored, a, b = run(valkey_standalone.url, issuer, fn)
    assert stored == 1 and a is None and b.der == b"b"


def test_answers_left_close_to_expiry_are_an_anomaly(valkey_standalone, test_pki, tmp_path):
    """A responder certificate ending before the next answer's nextUpdate stops the
    re-signing; the stale answer left in place is reported (metric and audit record)."""
    import json

    from responder.audit.log import AuditLog
    from responder.audit.trail import AuditTrail
    from responder.observability import metrics
    from responder.testing import pki

    short = pki.make_responder(test_pki.issuer, days=2)
    name = "nearexp" + str(time.monotonic_ns() % 10**6)
    config = IssuerConfig(name, tmp_path, Policy.TLS, partitions=2)
    identity = ResponderIdentity(SoftwareSigner(short.key), test_pki.issuer.cert, short.cert)
    issuer = IssuerRuntime(config, identity, Schedule(validity=4 * DAY - 1))
    trail = AuditTrail(AuditLog(tmp_path / "audit.log"))

    async def fn(store, ingest):
        await ingest.submit([issued(88, issuer.name)])
        record = await store.get_record(issuer.name, 88)
        now = int(time.time())
        old = PreSigned(now - 3 * DAY, now + HOUR, b"old")
        await store.put_answer(issuer.name, record, old, now - 8 * HOUR)  # due: past
        return await Presigner(store, [issuer], audit=trail).sweep()

    assert run(valkey_standalone.url, issuer, fn) == 0
    left = metrics.ANSWER_SOONEST_EXPIRY.labels(issuer.name)._value.get()
    assert 0 < left <= HOUR
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["anomaly.answers_near_expiry"]
    assert records[0]["issuer"] == issuer.name and records[0]["seconds_left"] <= HOUR


def test_sweep_with_nothing_due_reads_no_records(valkey_standalone, issuer):
    """The sweep finds due answers through the due index: with nothing due it sends a few
    commands per partition and reads no record and no answer but the few due next
    (at 3079c4f it read every record and every answer: 7.9 s at 1M certificates)."""
    serials = list(range(20_000, 22_000))

    async def fn(store, ingest):
        await ingest.submit([issued(s, issuer.name) for s in serials])
        presigner = Presigner(store, [issuer], PresignSettings(batch=256))
        first = await presigner.sweep()
        await store.client.config_resetstat()
        second = await presigner.sweep()
        stats = await store.client.info("commandstats")
        return first, second, stats

    first, second, stats = run(valkey_standalone.url, issuer, fn)
    assert first == len(serials) and second == 0
    calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}
    partitions = issuer.config.partitions
    assert "hscan" not in calls and "hmget" not in calls and "hgetall" not in calls
    assert calls.get("zrange", 0) == 2 * partitions  # due now (none), due next (peek)
    assert calls.get("mget", 0) == partitions  # the peeked answers: PEEK per partition
    assert sum(calls.values()) <= 8 * partitions, calls


def test_expired_certificates_leave_the_due_index(valkey_standalone, issuer):
    async def fn(store, ingest):
        await ingest.submit([issued(31337, issuer.name, "2020-01-01T00:00:00Z")])
        p = 31337 % issuer.config.partitions
        now = int(time.time())
        before = await store.due_serials(issuer.name, p, now, 0, 100)
        stored = await Presigner(store, [issuer]).sweep()
        after = await store.due_serials(issuer.name, p, now, 0, 100)
        return before, stored, after

    before, stored, after = run(valkey_standalone.url, issuer, fn)
    assert 31337 in before and stored == 0 and 31337 not in after
