"""The store and event application, on a real valkey-server and on a real 3-master cluster."""

import itertools
import json
import random
import time
from pathlib import Path

import pytest
import trio

from responder.config import IssuerConfig, StoreConfig
from responder.ingest import MAX_BATCH, BatchTooLarge, Ingestor
from responder.ocsp.types import RevocationReason
from responder.policy import Policy
from responder.store import PreSigned, Status, Store, StoreError, ValkeyProcess, keys

from ..store_helpers import ISSUERS, issued, revoked, with_store
from ..valkey import command

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

    now = int(time.time())
    good = PreSigned(now - 300, now + 86400, b"good-answer")

    async def run(store, ingest):
        await ingest.submit([issued(s)])
        record = await store.get_record("tls", s)
        stored = await store.put_answer("tls", record, good, now + 3600)
        got = await store.get_answer("tls", s)
        await ingest.submit([revoked(s)])
        after_revoke = await store.get_answer("tls", s)
        # A pre-signer that signed before the revocation must not write its answer back.
        stale = await store.put_answer(
            "tls", record, PreSigned(now - 300, now + 86400, b"stale-good"), now + 3600
        )
        return stored, got, after_revoke, stale, await store.get_answer("tls", s)

    stored, got, after_revoke, stale, final = with_store(store_url, run)
    assert stored and got == good
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
    from ..valkey import cluster_url

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


def test_due_index_follows_every_change(store_url):
    """New certificates and status changes are due at once; a stored answer is due at
    its re-sign time; the pre-signer reads only this index, so a change it missed here
    would never be signed."""
    s = fresh()
    p = keys.partition_of(s, ISSUERS["tls"].partitions)
    now = int(time.time())

    async def run(store, ingest):
        seen = []
        await ingest.submit([issued(s)])
        seen.append(s in await store.due_serials("tls", p, now, 0, 10_000))
        record = await store.get_record("tls", s)
        answer = PreSigned(now - 300, now + 86400, b"answer")
        await store.put_answer("tls", record, answer, now + 3600)
        seen.append(s in await store.due_serials("tls", p, now, 0, 10_000))
        seen.append(s in await store.due_serials("tls", p, now + 3600, 0, 10_000))
        ttl = await store.client.ttl(keys.answer("tls", p, s))
        await ingest.submit([revoked(s)])
        seen.append(s in await store.due_serials("tls", p, now, 0, 10_000))
        gone = await store.get_answer("tls", s)
        await store.drop_due("tls", p, [s])
        seen.append(s in await store.due_serials("tls", p, now, 0, 10_000))
        return seen, ttl, gone

    seen, ttl, gone = with_store(store_url, run)
    assert seen == [True, False, True, True, False]
    assert 86400 - 60 <= ttl <= 86400  # the answer expires at its nextUpdate
    assert gone is None


def test_expired_answer_is_not_stored(store_url):
    s = fresh()
    now = int(time.time())

    async def run(store, ingest):
        await ingest.submit([issued(s)])
        record = await store.get_record("tls", s)
        stored = await store.put_answer(
            "tls", record, PreSigned(now - 90000, now - 10, b"expired"), now - 20000
        )
        return stored, await store.get_answer("tls", s)

    assert with_store(store_url, run) == (False, None)


def legacy_blob(this_update: int, next_update: int, der: bytes) -> bytes:
    return this_update.to_bytes(8, "big") + next_update.to_bytes(8, "big") + der


def test_layout_1_store_is_migrated_and_keeps_serving(store_url):
    """An issuer written by a revocd before the due index (layout 1: one answers hash per
    partition) is brought to layout 2 when it registers: valid answers move to keys of
    their own, expired ones are dropped, every record becomes due, the hash is deleted."""
    name = "old" + str(time.monotonic_ns() % 10**9)
    config = IssuerConfig(name, Path("old.pem"), Policy.TLS, partitions=4)
    now = int(time.time())
    serials = list(range(0x100, 0x100 + 40))

    async def main():
        async with Store.open(store_url) as store:
            c = store.client
            await c.hset(
                keys.ISSUERS,
                {name: json.dumps({"partitions": 4, "policy": "tls", "registered_at": now})},
            )
            for s in serials:
                p = s % 4
                await c.hset(keys.certs(name, p), {format(s, "x"): f"g|{now + 10**6}|1|{now}|0"})
                next_update = now + 86400 if s % 2 else now - 10  # odd serials: still valid
                blob = legacy_blob(now - 300, next_update, b"der-%d" % s)
                await c.hset(keys.legacy_answers(name, p), {format(s, "x"): blob})
            await store.register_issuers([config])
            answers = {s: await store.get_answer(name, s) for s in serials}
            due = set()
            for p in range(4):
                due |= set(await store.due_serials(name, p, now, 0, 1000))
            legacy = [await c.exists([keys.legacy_answers(name, p)]) for p in range(4)]
            layout = json.loads(await c.hget(keys.ISSUERS, name))["layout"]
            # Registering again (another process, a restart) finds nothing to do.
            await store.register_issuers([config])
            # A layout-1 writer (an old revocd left running) put an answer back in the
            # hash: a revocation must remove it too, so nothing can copy it back.
            s = serials[1]
            await c.hset(keys.legacy_answers(name, s % 4), {format(s, "x"): b"x" * 20})
            ingest = Ingestor(store, {name: config})
            await ingest.submit([revoked(s, name)])
            left = await c.hget(keys.legacy_answers(name, s % 4), format(s, "x"))
            return answers, due, legacy, layout, left

    answers, due, legacy, layout, left = trio.run(main)
    assert {s for s, a in answers.items() if a is not None} == {s for s in serials if s % 2}
    assert all(answers[s].der == b"der-%d" % s for s in serials if s % 2)
    assert due == set(serials)  # all re-signed by the next sweep
    assert legacy == [0, 0, 0, 0] and layout == keys.LAYOUT
    assert left is None


def test_no_key_holds_more_than_one_answer(store_url):
    """Answers are keys of their own: the partition keys hold records and indexes only,
    about 200 bytes per certificate, whatever the answers weigh."""
    name = "size" + str(time.monotonic_ns() % 10**9)
    config = IssuerConfig(name, Path("size.pem"), Policy.TLS, partitions=2)
    serials = list(range(1, 2001))
    now = int(time.time())

    async def run(store, ingest):
        await ingest.submit([issued(s, name) for s in serials])
        records = await store.get_records(name, serials)
        der = b"\x30" * 1000
        await store.put_answers(
            name,
            [(records[s], PreSigned(now, now + 86400, der), now + 3600) for s in serials],
        )
        sizes = {}
        for p in range(2):
            for key in (keys.certs(name, p), keys.due(name, p), keys.revoked(name, p)):
                sizes[key] = await store.client.memory_usage(key) or 0
        return sizes

    sizes = with_store(store_url, run, issuers={name: config})
    per_cert = sum(sizes.values()) / len(serials)
    assert per_cert < 250, sizes  # no 1,000-byte answers in there


def test_lifted_hold_of_a_certificate_revoked_before_issuance_stays_off_crls(store_url):
    """Found by the domain differential test: a hold pushed before the issuance, lifted,
    then the issuance reported, used to put the good certificate on the revoked index."""
    s = fresh()

    async def run(store, ingest):
        results = await ingest.submit(
            [
                revoked(s, "smime", reason="certificateHold"),
                {"type": "unrevoked", "issuer": "smime", "serial": format(s, "x")},
                issued(s, "smime"),
            ]
        )
        listed = {r.serial async for r in store.revoked_records("smime")}
        p = keys.partition_of(s, ISSUERS["smime"].partitions)
        indexed = await store.client.zscore(keys.revoked("smime", p), keys.serial_field(s))
        return [(r.result, r.message) for r in results], listed, indexed

    results, listed, indexed = with_store(store_url, run)
    assert results[-1] == ("applied", "not_after recorded")
    assert s not in listed and indexed is None


def test_a_dead_store_raises_store_unavailable(tmp_path):
    """Every public store coroutine leaves with StoreError when the server is gone, so
    callers answer tryLater or 503 instead of meeting a driver error."""
    from responder.store import StoreUnavailable

    server = ValkeyProcess(tmp_path / "v").start()

    async def main():
        async with Store.open(server.url, StoreConfig(url=server.url)) as store:
            await store.register_issuers(ISSUERS.values())
            server.kill()
            got = []
            for call in (
                lambda: store.get_records("tls", [1, 2, 3]),
                lambda: store.get_record("tls", 1),
                lambda: store.due_serials("tls", 0, 0, 0, 10),
                lambda: store.take_lease("x", "me", 1000),
            ):
                try:
                    await call()
                except StoreUnavailable as exc:
                    got.append(type(exc))
            return got

    try:
        assert trio.run(main) == [StoreUnavailable] * 4
    finally:
        server.kill()


def test_a_dropped_subscription_ends_rather_than_reconnecting_silently(valkey_standalone):
    """The server closes the subscriber's connection (CLIENT KILL TYPE pubsub, as a
    restart or a network cut would): the subscription must end with an error, so the
    change feed resubscribes and resyncs. Re-established behind the subscriber's back,
    as the driver would by default, the notifications sent meanwhile (a revocation)
    would be lost without a trace and cached answers would go on being served."""

    async def run(store, ingest):
        outcome = "still subscribed"
        with trio.move_on_after(10):
            try:
                async with store.subscribe_changes() as changes:
                    await trio.sleep(0.2)  # subscription established
                    await trio.to_thread.run_sync(
                        lambda: command(
                            valkey_standalone.port,
                            "CLIENT",
                            "KILL",
                            "TYPE",
                            "pubsub",
                            password=valkey_standalone.password,
                        )
                    )
                    async for _ in changes:
                        pass
                outcome = "ended"
            except Exception as exc:  # coredis's ConnectionError, possibly in a group
                outcome = f"ended: {type(exc).__name__}"
        return outcome

    assert with_store(valkey_standalone.url, run).startswith("ended")
