"""The process's memory of signed answers and status records, and the chain link that
serves from it.

Correctness rests on invalidation: a status change reaches `invalidate` through the
change feed (responder/changes.py), and a lookup that began before an invalidation
must not store what it found (it may be the old status), hence the epochs.
"""

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from ..domain.records import CertRecord
from ..observability import metrics
from .answer import Answer, AnswerSource, Question, TryLater
from .arena import STATUS_INDEX, STATUS_NAMES, Record

_FROM_CACHE = metrics.ANSWER_SOURCE.labels("cache")
_STALE = metrics.ANSWER_SOURCE.labels("cache_store_down")
# Status records of live answers are trusted this long even without a notification,
# in case one was missed between a subscription's loss and its resync.
RECORD_TTL = 60.0
# Invalidations remembered for the epoch check; a lookup older than the oldest one
# remembered is rare (it would have had to wait through 100k changes).
INVALIDATION_MEMORY = 100_000

Key = tuple[str, int, int]  # issuer, serial, CertID hash algorithm


class Entry:
    """One cached answer and the response head the data plane rendered for it (opaque
    bytes here: the cache keeps them so the fast path formats headers once per answer)."""

    __slots__ = ("answer", "head")

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.head = b""


class AnswerCache:
    """Bounded LRU of signed answers, keyed by issuer, serial and CertID hash algorithm.

    Entries are served until their refresh time; while the store is down they are
    served until nextUpdate, since they are still valid answers.
    """

    def __init__(
        self, max_entries: int = 1_000_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._by_serial: dict[tuple[str, int], set[int]] = {}
        # GET request target -> cache key, so a repeated GET skips decoding; the key is
        # looked up in _entries each time, so invalidation needs nothing here.
        self.urls: dict[bytes, Key] = {}
        # Status records for live answers (nonces, several CertIDs), dropped on change like
        # answers, and after RECORD_TTL seconds in case a notification was missed.
        self.records: OrderedDict[tuple[str, int], tuple[CertRecord | None, float]] = OrderedDict()
        # A lookup that began before an invalidation must not cache what it found:
        # `epoch` counts invalidations, `_invalidated` remembers when each serial's was.
        self.epoch = 0
        self._cleared_at = 0
        self._invalidated: OrderedDict[tuple[str, int], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def stale(self, issuer: str, serial: int, since: int) -> bool:
        """Whether (issuer, serial) was invalidated after epoch `since`."""
        if self._cleared_at > since:
            return True
        return self._invalidated.get((issuer, serial), -1) > since

    # -- status records ----------------------------------------------------------------

    def get_record(self, issuer: str, serial: int) -> tuple[bool, CertRecord | None]:
        found = self.records.get((issuer, serial))
        if found is None or self.clock() - found[1] > RECORD_TTL:
            return False, None
        return True, found[0]

    def put_record(self, issuer: str, serial: int, record: CertRecord | None, since: int) -> None:
        if self.stale(issuer, serial, since):
            return
        self.records[(issuer, serial)] = (record, self.clock())
        self.records.move_to_end((issuer, serial))
        while len(self.records) > self.max_entries:
            self.records.popitem(last=False)

    # -- answers -----------------------------------------------------------------------

    def remember_url(self, target: bytes, key: Key) -> None:
        if len(self.urls) >= self.max_entries * 2:
            self.urls.clear()  # cheaper than an LRU per URL; misses refill it
        self.urls[target] = key

    def get_url(self, target: bytes, now: int) -> Entry | None:
        """The entry a GET for `target` was last answered from, while fresh."""
        key = self.urls.get(target)
        if key is None:
            return None
        entry = self._entries.get(key)
        if entry is None or now >= entry.answer.refresh_at:
            return None
        return entry

    def get(self, key: Key, now: int, stale_ok: bool = False) -> Answer | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        answer = entry.answer
        limit = answer.next_update if stale_ok else answer.refresh_at
        if now >= limit:
            if now >= answer.next_update:
                self._drop(key)
            return None
        self._entries.move_to_end(key)
        return answer

    def put(self, key: Key, answer: Answer) -> None:
        self._entries[key] = Entry(answer)
        self._entries.move_to_end(key)
        self._by_serial.setdefault((key[0], key[1]), set()).add(key[2])
        while len(self._entries) > self.max_entries:
            old, _ = self._entries.popitem(last=False)
            self._forget(old)
        metrics.CACHE_ENTRIES.set(len(self._entries))

    def invalidate(self, issuer: str, serial: int) -> None:
        self.epoch += 1
        self._invalidated[(issuer, serial)] = self.epoch
        self._invalidated.move_to_end((issuer, serial))
        while len(self._invalidated) > INVALIDATION_MEMORY:
            self._invalidated.popitem(last=False)
        self.records.pop((issuer, serial), None)
        for alg in self._by_serial.pop((issuer, serial), ()):
            self._entries.pop((issuer, serial, alg), None)
            metrics.CACHE_INVALIDATIONS.inc()
        metrics.CACHE_ENTRIES.set(len(self._entries))

    def clear(self) -> None:
        self._entries.clear()
        self._by_serial.clear()
        self.urls.clear()
        self.records.clear()
        self.epoch += 1
        self._cleared_at = self.epoch
        metrics.CACHE_ENTRIES.set(0)

    def _drop(self, key: Key) -> None:
        self._entries.pop(key, None)
        self._forget(key)

    def _forget(self, key: Key) -> None:
        algs = self._by_serial.get((key[0], key[1]))
        if algs is not None:
            algs.discard(key[2])
            if not algs:
                del self._by_serial[(key[0], key[1])]


class SharedAnswers(Protocol):
    """The host's answer cache by GET URL (arena.Arena)."""

    def snapshot(self, serial: int) -> tuple[int, int, int]: ...

    def lookup(self, url: bytes, now: int, stale_ok: bool = False) -> Record | None: ...

    def put(
        self,
        url: bytes,
        snapshot: tuple[int, int, int],
        der: bytes,
        this_update: int,
        next_update: int,
        refresh_at: int,
        status: int,
    ) -> bool: ...


def _from_record(record: Record) -> Answer:
    return Answer(
        record.der,
        record.this_update,
        record.next_update,
        record.refresh_at,
        True,
        "cache",
        STATUS_NAMES[record.status],
    )


class CachedSource:
    """Serves repeated questions from memory, without touching the store.

    Only simple questions (one CertID, no nonce echoed) are cached. When the next
    source cannot read the status (TryLater with stale_ok), an answer past its
    refresh time but before its nextUpdate is served instead: it is still valid, and
    an invalidation would have removed it had the status changed.

    With `shared` (the host's arena), GET answers are kept there, once per host, by
    URL, and not in this process's cache: the reactor and every worker read them from
    there. POST answers stay in the process's cache."""

    def __init__(
        self, inner: AnswerSource, cache: AnswerCache, shared: SharedAnswers | None = None
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.shared = shared

    async def answer(self, question: Question) -> Answer:
        if not question.simple:
            return await self.inner.answer(question)
        if self.shared is not None and question.target is not None:
            return await self._shared(question, question.target, self.shared)
        assert question.issuer is not None
        cid = question.single
        key = (question.issuer.name, cid.serial, cid.hash_algorithm)
        cache = self.cache
        now = int(cache.clock())
        hit = cache.get(key, now)
        if hit is not None:
            _FROM_CACHE.inc()
            if question.target is not None:
                cache.remember_url(question.target, key)
            return hit
        since = cache.epoch
        try:
            answer = await self.inner.answer(question)
        except TryLater as exc:
            if exc.stale_ok:
                stale = cache.get(key, now, stale_ok=True)
                if stale is not None:
                    _STALE.inc()
                    return stale
            raise
        if answer.cacheable and not cache.stale(key[0], key[1], since):
            cache.put(key, answer)
            if question.target is not None:
                cache.remember_url(question.target, key)
        return answer

    async def _shared(self, question: Question, target: bytes, shared: SharedAnswers) -> Answer:
        """A GET the arena did not answer (the reactor or the fast path asked it first).

        The snapshot is taken before the store is read, so an answer read before a
        change is stored dead (whichever process applies the invalidation, and when).
        An answer from this process's cache is never copied into the arena: the
        arena's owner may have applied an invalidation this process has not yet."""
        now = int(self.cache.clock())
        snapshot = shared.snapshot(question.single.serial)
        try:
            answer = await self.inner.answer(question)
        except TryLater as exc:
            if exc.stale_ok:
                stale = shared.lookup(target, now, stale_ok=True)
                if stale is not None:
                    _STALE.inc()
                    return _from_record(stale)
            raise
        status = STATUS_INDEX.get(answer.cert_status)
        if answer.cacheable and status is not None and now < answer.refresh_at:
            shared.put(
                target,
                snapshot,
                answer.der,
                answer.this_update,
                answer.next_update,
                answer.refresh_at,
                status,
            )
        return answer
