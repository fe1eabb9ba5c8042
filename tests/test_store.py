"""The store and event application, on a real valkey-server and on a real 3-master cluster."""

import itertools
import random

import pytest
import trio

from responder.config import StoreConfig
from responder.ingest import MAX_BATCH, BatchTooLarge
from responder.ocsp.types import RevocationReason
from responder.store import PreSigned, Status, Store, StoreError, ValkeyProcess

from .store_helpers import issued, revoked, with_store
from .valkey import command

_serials = itertools.count(random.randrange(1 << 40, 1 << 48))


def fresh() -> int:
    """A serial no other test used (the servers are shared by the session)."""
    return next(_serials) * 7919


def codes(results):
    return [r.result for r in results]


def test_issue_and_replay_is_idempotent(store_url):
    s = fresh()

    async def run(store, ingest):
        first = await ingest.submit([issued(s)])
        again = await ingest.submit([issued(s)])
        record = await store.get_record("tls", s)
        return first, again, record

    first, again, record = with_store(store_url, run)
    assert codes(first) == ["applied"]
    assert codes(again) == ["unchanged"]
    assert again[0].message == "already issued"
    assert record.status is Status.GOOD
    assert record.not_after == 1811808000
    assert record.crl_shard == s % 4


def test_revocation_rules(store_url):
    s = fresh()

    async def run(store, ingest):
        steps = {}
        steps["issue"] = await ingest.submit([issued(s)])
        steps["revoke"] = await ingest.submit([revoked(s, reason="superseded")])
        steps["replay"] = await ingest.submit([revoked(s, reason="superseded")])
        steps["other reason"] = await ingest.submit([revoked(s, reason="cessationOfOperation")])
        steps["to keyCompromise"] = await ingest.submit(
            [
                revoked(
                    s,
                    at="2026-10-01T00:00:00Z",
                    reason="keyCompromise",
                    invalidity_date="2026-09-30T00:00:00Z",
                )
            ]
        )
        steps["kc replay"] = await ingest.submit(
            [
                revoked(
                    s,
                    at="2026-10-01T00:00:00Z",
                    reason="keyCompromise",
                    invalidity_date="2026-09-30T00:00:00Z",
                )
            ]
        )
        steps["reissue other not_after"] = await ingest.submit(
            [issued(s, not_after="2028-01-01T00:00:00Z")]
        )
        return steps, await store.get_record("tls", s)

    steps, record = with_store(store_url, run)
    assert codes(steps["issue"]) == ["applied"]
    assert codes(steps["revoke"]) == ["applied"]
    assert codes(steps["replay"]) == ["unchanged"]
    assert codes(steps["other reason"]) == ["rejected"]
    assert steps["other reason"][0].message.startswith("reason: already revoked")
    assert codes(steps["to keyCompromise"]) == ["applied"]
    assert steps["to keyCompromise"][0].message == "reason changed to keyCompromise"
    assert codes(steps["kc replay"]) == ["unchanged"]
    assert codes(steps["reissue other not_after"]) == ["rejected"]
    assert steps["reissue other not_after"][0].message.startswith("not_after: already issued")
    assert record.status is Status.REVOKED
    assert record.reason is RevocationReason.KEY_COMPROMISE
    assert record.revoked_at == 1790812800  # moved earlier: 2026-10-01
    assert record.invalidity_date == 1790726400


def test_hold_and_unrevoke_where_policy_allows(store_url):
    s, t = fresh(), fresh()

    async def run(store, ingest):
        out = await ingest.submit(
            [
                issued(s, "smime"),
                revoked(s, "smime", reason="certificateHold"),
                {"type": "unrevoked", "issuer": "smime", "serial": format(s, "x")},
                {"type": "unrevoked", "issuer": "smime", "serial": format(s, "x")},
                issued(t, "smime"),
                revoked(t, "smime", reason="certificateHold"),
                revoked(t, "smime", reason="superseded"),
                {"type": "unrevoked", "issuer": "smime", "serial": format(t, "x")},
            ]
        )
        return out, await store.get_record("smime", s), await store.get_record("smime", t)

    out, rs, rt = with_store(store_url, run)
    assert codes(out) == [
        "applied",
        "applied",
        "applied",
        "unchanged",
        "applied",
        "applied",
        "applied",
        "rejected",
    ]
    assert out[2].message == "hold lifted"
    assert out[6].message == "hold made permanent"
    assert out[7].message.startswith("type: only a certificateHold revocation can be lifted")
    assert rs.status is Status.GOOD
    assert rt.status is Status.REVOKED and rt.reason is RevocationReason.SUPERSEDED


def test_revoked_before_issued_then_not_after_recorded(store_url):
    s = fresh()

    async def run(store, ingest):
        a = await ingest.submit([revoked(s)])
        before = await store.get_record("tls", s)
        b = await ingest.submit([issued(s)])
        return a, before, b, await store.get_record("tls", s)

    a, before, b, after = with_store(store_url, run)
    assert codes(a) == ["applied"] and before.not_after is None
    assert codes(b) == ["applied"] and b[0].message.startswith("not_after recorded")
    assert after.status is Status.REVOKED and after.not_after == 1811808000


def test_batch_of_ten_thousand_each_with_its_result(store_url):
    base = fresh()
    events = [issued(base + i) for i in range(MAX_BATCH - 2)]
    events.append({"type": "issued", "issuer": "nope", "serial": "1", "not_after": "x"})
    events.append(revoked(base + 5))

    async def run(store, ingest):
        results = await ingest.submit(events)
        records = await store.get_records("tls", [base + i for i in range(MAX_BATCH - 2)])
        with pytest.raises(BatchTooLarge):
            await ingest.submit([*events, issued(1)])
        return results, records

    results, records = with_store(store_url, run)
    assert len(results) == MAX_BATCH
    assert [r.index for r in results] == list(range(MAX_BATCH))
    assert codes(results).count("applied") == MAX_BATCH - 1
    assert results[-2].result == "rejected" and results[-2].message.startswith("issuer:")
    assert len(records) == MAX_BATCH - 2
    assert records[base + 5].status is Status.REVOKED


def test_revoked_records_lists_every_partition(store_url):
    serials = [fresh() for _ in range(40)]

    async def run(store, ingest):
        await ingest.submit([issued(s) for s in serials] + [revoked(s) for s in serials[::3]])
        return {r.serial async for r in store.revoked_records("tls")}

    listed = with_store(store_url, run)
    assert set(serials[::3]) <= listed
    assert not (set(serials) - set(serials[::3])) & listed


def test_pre_signed_answer_cannot_outlive_a_revocation(store_url):
    s = fresh()

    async def run(store, ingest):
        await ingest.submit([issued(s)])
        record = await store.get_record("tls", s)
        stored = await store.put_answer("tls", record, PreSigned(1, 2, b"good-answer"))
        got = await store.get_answer("tls", s)
        await ingest.submit([revoked(s)])
        after_revoke = await store.get_answer("tls", s)
        # A pre-signer that signed before the revocation must not write its answer back.
        stale = await store.put_answer("tls", record, PreSigned(1, 2, b"stale-good"))
        return stored, got, after_revoke, stale, await store.get_answer("tls", s)

    stored, got, after_revoke, stale, final = with_store(store_url, run)
    assert stored and got == PreSigned(1, 2, b"good-answer")
    assert after_revoke is None
    assert not stale and final is None


def test_change_feed_and_notifications(store_url):
    s = fresh()

    async def run(store, ingest):
        seen = []
        async with store.subscribe_changes() as changes:
            await trio.sleep(0.2)  # subscription established
            await ingest.submit([issued(s), revoked(s)])
            with trio.fail_after(10):
                async for change in changes:
                    if change.serial == s:
                        seen.append(change)
                        if change.status is Status.REVOKED:
                            break
        partition = s % store.partitions("tls")
        return seen, await store.feed_entries("tls", partition)

    seen, feed = with_store(store_url, run)
    assert [(c.status, c.version) for c in seen] == [(Status.GOOD, 1), (Status.REVOKED, 2)]
    mine = [c for c in feed if c.serial == s]
    assert [(c.status, c.version) for c in mine] == [(Status.GOOD, 1), (Status.REVOKED, 2)]


def test_keys_spread_over_cluster_nodes(valkey_cluster):
    from .valkey import cluster_url

    serials = [fresh() for _ in range(64)]

    async def run(store, ingest):
        return await ingest.submit([issued(s) for s in serials])

    assert set(codes(with_store(cluster_url(valkey_cluster), run))) == {"applied"}
    sizes = [int(command(n.port, "DBSIZE").strip()[1:]) for n in valkey_cluster]
    assert sum(1 for size in sizes if size > 0) == 3, sizes


def test_acknowledgement_waits_for_fsync(valkey_standalone):
    """Every apply is followed by WAITAOF on the same connection before it is acknowledged."""

    def waitaof_calls() -> int:
        stats = command(
            valkey_standalone.port, "INFO", "commandstats", password=valkey_standalone.password
        ).decode()
        for line in stats.splitlines():
            if line.startswith("cmdstat_waitaof:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    before = waitaof_calls()
    s = fresh()

    async def run(store, ingest):
        return await ingest.submit([issued(s), issued(s + 1)])

    assert codes(with_store(valkey_standalone.url, run)) == ["applied", "applied"]
    assert waitaof_calls() >= before + 1


def test_store_without_persistence_is_refused(tmp_path):
    server = ValkeyProcess(tmp_path, extra_config={"appendonly": "no"}).start()
    try:

        async def run():
            async with Store.open(server.url, StoreConfig(url=server.url)):
                pass

        with pytest.raises(StoreError, match="appendonly=no"):
            trio.run(run)
    finally:
        server.stop()
