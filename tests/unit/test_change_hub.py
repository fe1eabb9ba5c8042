"""ChangeHub over the in-memory store: one subscription, records fetched once for all
consumers, a Resync after every (re)subscription, and a consumer that falls behind
resyncs instead of holding the others up."""

import trio
import trio.testing

from responder.answers.cache import AnswerCache
from responder.changes import Changed, ChangeHub, Resync, invalidate_cache
from responder.domain.events import Event, EventType
from responder.ocsp.types import RevocationReason
from responder.store.memory import MemoryStore

from .fakes import Clock, answer, runtime


class CountingStore(MemoryStore):
    reads = 0
    subscriptions = 0

    async def get_records(self, issuer, serials):  # type: ignore[no-untyped-def]
        CountingStore.reads += 1
        return await super().get_records(issuer, serials)

    def subscribe_changes(self):  # type: ignore[no-untyped-def]
        CountingStore.subscriptions += 1
        return super().subscribe_changes()


async def issue(store: MemoryStore, issuer: str, *serials: int) -> None:
    for serial in serials:
        event = Event(EventType.ISSUED, issuer, serial, not_after=2_000_000_000)
        await store.apply_events(issuer, serial % 4, [event], 1)


async def revoke(store: MemoryStore, serial: int) -> None:
    event = Event(
        EventType.REVOKED,
        "u",
        serial,
        revoked_at=1_700_000_000,
        reason=RevocationReason.KEY_COMPROMISE,
    )
    await store.apply_events("u", serial % 4, [event], 1)


async def take(feed: trio.MemoryReceiveChannel, n: int) -> list:  # type: ignore[type-arg]
    out = []
    with trio.fail_after(5):
        while len(out) < n:
            out.append(await feed.receive())
    return out


def test_one_subscription_one_record_read_every_consumer_served() -> None:
    async def main() -> None:
        rt, _ = runtime()
        other, _ = runtime("other")
        store = CountingStore(Clock())
        await store.register_issuers([rt.config, other.config])
        hub = ChangeHub(store, ["u"])
        crl = hub.subscribe("crl", records=True)
        presign = hub.subscribe("presign", records=True)
        cache = hub.subscribe("cache")
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)
            assert [await crl.receive(), await presign.receive(), await cache.receive()] == [
                Resync(first=True)
            ] * 3
            CountingStore.reads = 0
            await issue(store, "other", 9)  # not ours: dropped before any read
            await issue(store, "u", 1, 2, 3)
            await trio.testing.wait_all_tasks_blocked()
            got = {name: [] for name in ("crl", "presign", "cache")}
            for name, feed in (("crl", crl), ("presign", presign), ("cache", cache)):
                while sum(len(b) for b in got[name]) < 3:
                    got[name].append(await feed.receive())
            serials = [c.change.serial for batch in got["crl"] for c in batch]
            assert serials == [1, 2, 3]
            assert all(c.record is not None for batch in got["presign"] for c in batch)
            assert all(c.record is None for batch in got["cache"] for c in batch)
            assert CountingStore.reads <= len(got["crl"])  # once per batch, not per consumer
            assert CountingStore.subscriptions == 1
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_lost_subscription_resubscribes_and_resyncs_everyone() -> None:
    async def main() -> None:
        rt, _ = runtime()
        store = MemoryStore(Clock())
        await store.register_issuers([rt.config])
        hub = ChangeHub(store, ["u"], retry=0.01)
        feed = hub.subscribe("crl", records=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)
            assert await feed.receive() == Resync(first=True)
            store.drop_subscriptions()  # the store restarted
            assert await take(feed, 1) == [Resync(first=False)]
            await issue(store, "u", 4)
            [batch] = await take(feed, 1)
            assert isinstance(batch[0], Changed) and batch[0].change.serial == 4
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_consumer_that_falls_behind_resyncs_and_does_not_hold_others_up() -> None:
    async def main() -> None:
        rt, _ = runtime()
        store = MemoryStore(Clock())
        await store.register_issuers([rt.config])
        hub = ChangeHub(store, ["u"], batch=1)
        slow = hub.subscribe("crl", buffer=2)
        fast = hub.subscribe("cache", buffer=100)
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)
            await fast.receive()
            for serial in range(1, 11):
                await issue(store, "u", serial)
                await trio.testing.wait_all_tasks_blocked()
            fast_serials = [c.change.serial for b in await take(fast, 10) for c in b]
            assert fast_serials == list(range(1, 11))  # never waited for `slow`
            first = await take(slow, 2)  # what fitted: the first Resync and a batch
            assert first[0] == Resync(first=True)
            # Then, once there is room, the Resync owed for what was dropped.
            assert await take(slow, 1) == [Resync(first=False)]
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_the_cache_consumer_invalidates_and_clears_on_resync() -> None:
    async def main() -> None:
        rt, _ = runtime()
        store = MemoryStore(Clock())
        await store.register_issuers([rt.config])
        await issue(store, "u", 1, 2)
        cache = AnswerCache(10, clock=Clock())
        hub = ChangeHub(store, ["u"], retry=0.01)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(invalidate_cache, hub.subscribe("cache"), cache)
            await nursery.start(hub.run)
            await trio.testing.wait_all_tasks_blocked()
            cache.put(("u", 1, 0), answer(1))
            cache.put(("u", 2, 0), answer(2))
            await revoke(store, 1)
            with trio.fail_after(5):
                while cache.get(("u", 1, 0), 0) is not None:
                    await trio.sleep(0.001)
            assert cache.get(("u", 2, 0), 0) is not None  # only what changed
            store.drop_subscriptions()
            with trio.fail_after(5):
                while len(cache):
                    await trio.sleep(0.001)  # missed notifications: everything goes
            nursery.cancel_scope.cancel()

    trio.run(main)
