"""CachedSource and AnswerCache with a fixed clock: simple questions are served from
memory until the refresh time; nonces and several CertIDs pass through; an
invalidation during a lookup keeps its result out; a store that is down gets the
stale-but-valid answer; overload refusals do not."""

import pytest
import trio

from responder.answers.answer import TryLater, Unauthorized
from responder.answers.cache import AnswerCache, CachedSource

from .fakes import Clock, Scripted, answer, question, runtime


def chain(results: list) -> tuple[CachedSource, Scripted, AnswerCache, Clock]:  # type: ignore[type-arg]
    clock = Clock()
    cache = AnswerCache(100, clock=clock)
    inner = Scripted(results)
    return CachedSource(inner, cache), inner, cache, clock


def test_a_repeated_question_is_served_from_memory_until_refresh() -> None:
    rt, _ = runtime()
    source, inner, cache, clock = chain([answer(7)])
    first = trio.run(source.answer, question(rt, 7, target=b"/x"))
    again = trio.run(source.answer, question(rt, 7))
    assert first is again and len(inner.asked) == 1
    assert cache.get_url(b"/x", int(clock.now)) is not None  # the fast path's index
    clock.now = first.refresh_at
    trio.run(source.answer, question(rt, 7))
    assert len(inner.asked) == 2  # refreshed from the next source


def test_nonce_and_multi_id_questions_pass_through_uncached() -> None:
    rt, _ = runtime()
    source, inner, cache, _ = chain([answer(7)])
    trio.run(source.answer, question(rt, 7, nonce=b"n" * 16))
    trio.run(source.answer, question(rt, 7, 8))
    assert len(inner.asked) == 2 and len(cache) == 0


def test_an_invalidation_during_the_lookup_keeps_the_result_out() -> None:
    rt, _ = runtime()
    clock = Clock()
    cache = AnswerCache(100, clock=clock)

    class Racing(Scripted):
        async def answer(self, q):  # type: ignore[no-untyped-def]
            cache.invalidate("u", 7)  # the revocation arrives while the store is read
            return await super().answer(q)

    source = CachedSource(Racing([answer(7)]), cache)
    trio.run(source.answer, question(rt, 7))
    assert len(cache) == 0


def test_store_down_serves_the_stale_answer_until_next_update() -> None:
    rt, _ = runtime()
    source, inner, _cache, clock = chain([answer(7)])
    cached = trio.run(source.answer, question(rt, 7))
    clock.now = cached.refresh_at + 1
    inner.results = [TryLater("store unavailable", stale_ok=True)]
    assert trio.run(source.answer, question(rt, 7)) is cached
    clock.now = cached.next_update
    with pytest.raises(TryLater):
        trio.run(source.answer, question(rt, 7))  # expired: nothing valid to give


def test_overload_refusals_do_not_serve_stale_answers() -> None:
    rt, _ = runtime()
    source, inner, _, clock = chain([answer(7)])
    cached = trio.run(source.answer, question(rt, 7))
    clock.now = cached.refresh_at + 1
    inner.results = [TryLater("signing queue full")]
    with pytest.raises(TryLater):
        trio.run(source.answer, question(rt, 7))


def test_errors_are_not_cached() -> None:
    rt, _ = runtime()
    source, inner, cache, _ = chain([Unauthorized("never issued")])
    for _ in range(2):
        with pytest.raises(Unauthorized):
            trio.run(source.answer, question(rt, 7))
    assert len(inner.asked) == 2 and len(cache) == 0


def test_the_cache_is_bounded_and_a_clear_forgets_urls_and_records() -> None:
    cache = AnswerCache(3, clock=Clock())
    for serial in range(5):
        cache.put(("u", serial, 0), answer(serial))
        cache.remember_url(b"/%d" % serial, ("u", serial, 0))
    assert len(cache) == 3 and cache.get(("u", 0, 0), 0) is None
    cache.put_record("u", 9, None, cache.epoch)
    cache.clear()
    assert len(cache) == 0 and cache.urls == {} and cache.get_record("u", 9) == (False, None)
