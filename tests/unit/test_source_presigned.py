"""PresignedSource over the in-memory store: a valid pre-signed SHA-1 answer is served;
otherwise the record read is handed on (no second read); a store that is down is
tryLater with stale_ok. MissBatcher: concurrent misses share one round trip."""

import pytest
import trio

from responder.answers.answer import TryLater
from responder.answers.cache import AnswerCache
from responder.answers.presigned import MissBatcher, PresignedSource
from responder.domain.events import Event, EventType
from responder.ocsp import HashAlgorithm
from responder.store import PreSigned
from responder.store.memory import MemoryStore

from .fakes import Clock, Scripted, answer, question, runtime


async def stored(clock: Clock, serial: int, presigned: bool) -> MemoryStore:
    rt, _ = runtime()
    store = MemoryStore(clock)
    await store.register_issuers([rt.config])
    event = Event(EventType.ISSUED, "u", serial, not_after=int(clock.now) + 90 * 86400)
    await store.apply_events("u", serial % 4, [event], 1)
    if presigned:
        record = await store.get_record("u", serial)
        assert record is not None
        this_update, next_update = rt.schedule.window(int(clock.now))
        done = PreSigned(this_update, next_update, b"presigned-der")
        assert await store.put_answer("u", record, done, next_update)
    return store


async def ask(store: MemoryStore, clock: Clock, q, inner: Scripted):  # type: ignore[no-untyped-def]
    batcher = MissBatcher(store)
    source = PresignedSource(inner, batcher, AnswerCache(10, clock=clock), clock)
    result: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(batcher.run)
        try:
            result["value"] = await source.answer(q)
        except Exception as exc:  # raised as is, not in the nursery's group
            result["error"] = exc
        nursery.cancel_scope.cancel()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


def test_a_valid_presigned_answer_is_served() -> None:
    clock = Clock()
    rt, _ = runtime()

    async def main():  # type: ignore[no-untyped-def]
        store = await stored(clock, 5, presigned=True)
        return await ask(store, clock, question(rt, 5), Scripted([answer()]))

    got = trio.run(main)
    assert got.der == b"presigned-der" and got.source == "store" and got.cert_status == "good"


def test_past_refresh_or_another_hash_the_record_is_handed_on() -> None:
    clock = Clock()
    rt, _ = runtime()
    inner = Scripted([answer()])

    async def main() -> None:
        store = await stored(clock, 5, presigned=True)
        await ask(store, clock, question(rt, 5, alg=HashAlgorithm.SHA256), inner)
        clock.now += 4 * 86400  # past the refresh time, before nextUpdate
        await ask(store, clock, question(rt, 5), inner)

    trio.run(main)
    assert [q.record_known for q in inner.asked] == [True, True]
    assert all(q.record is not None and q.record.serial == 5 for q in inner.asked)


def test_a_serial_never_issued_is_handed_on_as_known_absent() -> None:
    clock = Clock()
    rt, _ = runtime()
    inner = Scripted([answer()])

    async def main() -> None:
        store = await stored(clock, 5, presigned=False)
        await ask(store, clock, question(rt, 6), inner)

    trio.run(main)
    assert inner.asked[0].record_known and inner.asked[0].record is None


def test_store_down_is_try_later_with_stale_ok() -> None:
    clock = Clock()
    rt, _ = runtime()

    async def main() -> None:
        store = await stored(clock, 5, presigned=True)
        store.down = True
        await ask(store, clock, question(rt, 5), Scripted([answer()]))

    with pytest.raises(TryLater) as raised:
        trio.run(main)
    assert raised.value.stale_ok


def test_concurrent_misses_share_round_trips() -> None:
    clock = Clock()

    class Counting(MemoryStore):
        calls = 0

        async def lookup_many(self, issuer, serials):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            await trio.sleep(0.01)
            return await super().lookup_many(issuer, serials)

    async def main() -> None:
        rt, _ = runtime()
        store = Counting(clock)
        await store.register_issuers([rt.config])
        batcher = MissBatcher(store)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(batcher.run)
            async with trio.open_nursery() as asks:
                for serial in [1, 2, 3, 1, 2, 3] * 10:
                    asks.start_soon(batcher.fetch, "u", serial)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert Counting.calls == 1
