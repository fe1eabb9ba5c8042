"""Pre-signed answers from the store, fetched in batches: the chain's link for misses."""

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import trio

from ..domain.answering import cert_status_name, unauthorized_for
from ..domain.records import CertRecord
from ..observability import metrics
from ..ocsp import HashAlgorithm
from ..store import PreSigned, StoreError
from .answer import Answer, AnswerSource, Question, TryLater
from .cache import AnswerCache

log = logging.getLogger("revocd.answers")
_FROM_STORE = metrics.ANSWER_SOURCE.labels("store")
Found = tuple[PreSigned | None, CertRecord | None]
# A store read slower than this is treated as a store that is down: the client gets
# tryLater (or a stale cached answer) rather than waiting with its TLS handshake.
FETCH_DEADLINE = 2.0


class AnswerLookup(Protocol):
    """What the batcher needs of the store (store/store.py, store/memory.py)."""

    async def lookup_many(self, issuer: str, serials: Sequence[int]) -> dict[int, Found]: ...


class RecordFetcher(Protocol):
    """One serial's pre-signed answer and record; MissBatcher is the implementation."""

    async def fetch(self, issuer: str, serial: int) -> Found: ...


class _Pending:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: Found = (None, None)
        self.error: BaseException | None = None


class MissBatcher:
    """Collects concurrent cache misses and fetches them in as few round trips as possible.

    While one fetch is in flight, new misses queue up and go together in the next;
    concurrent misses for the same serial share one fetch.
    """

    def __init__(self, store: AnswerLookup, max_batch: int = 512) -> None:
        self.store = store
        self.max_batch = max_batch
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._wake = trio.Event()

    async def fetch(self, issuer: str, serial: int) -> Found:
        key = (issuer, serial)
        waiter = self._pending.get(key)
        if waiter is None:
            waiter = self._pending[key] = _Pending()
            self._wake.set()
        await waiter.done.wait()
        if waiter.error is not None:
            raise StoreError(str(waiter.error))
        return waiter.value

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._pending:
                batch = dict(list(self._pending.items())[: self.max_batch])
                for key in batch:
                    del self._pending[key]
                await self._fetch(batch)

    async def _fetch(self, batch: dict[tuple[str, int], _Pending]) -> None:
        metrics.STORE_BATCH_SIZE.observe(len(batch))
        by_issuer: dict[str, list[int]] = {}
        for issuer, serial in batch:
            by_issuer.setdefault(issuer, []).append(serial)
        try:
            for issuer, serials in by_issuer.items():
                with trio.fail_after(FETCH_DEADLINE):
                    found = await self.store.lookup_many(issuer, serials)
                for serial in serials:
                    batch[(issuer, serial)].value = found.get(serial, (None, None))
        except Exception as exc:  # store down or slow: each waiter decides what to answer
            metrics.STORE_ERRORS.labels("lookup").inc()
            for waiter in batch.values():
                waiter.error = exc
        for waiter in batch.values():
            waiter.done.set()


class PresignedSource:
    """Pre-signed answers (SHA-1 CertIDs, as the pre-signer makes them) and the status
    record, which it hands on to the next source so a live answer needs no second read.

    A pre-signed answer is served until its refresh time (BR 4.9.10: re-signed before
    half its validity has passed); after that the next source signs a fresh one."""

    def __init__(
        self,
        inner: AnswerSource,
        fetcher: RecordFetcher,
        cache: AnswerCache,
        clock: Callable[[], float],
    ) -> None:
        self.inner = inner
        self.fetcher = fetcher
        self.cache = cache
        self.clock = clock

    async def answer(self, question: Question) -> Answer:
        if not question.simple:
            return await self.inner.answer(question)
        issuer = question.issuer
        assert issuer is not None
        cid = question.single
        since = self.cache.epoch
        try:
            presigned, record = await self.fetcher.fetch(issuer.name, cid.serial)
        except StoreError as exc:
            raise TryLater(f"store unavailable: {exc}", stale_ok=True) from exc
        self.cache.put_record(issuer.name, cid.serial, record, since)
        if (
            presigned is not None
            and cid.hash_algorithm == HashAlgorithm.SHA1
            # an expired certificate under `expired = "unauthorized"`: the next source
            # refuses it, whatever was signed before the end
            and not unauthorized_for(record, issuer.unknown, issuer.expired, int(self.clock()))
            and self.clock()
            < issuer.schedule.refresh_at(presigned.this_update, presigned.next_update)
        ):
            _FROM_STORE.inc()
            return Answer.signed(
                presigned.der, presigned, issuer.schedule, "store", True, cert_status_name(record)
            )
        return await self.inner.answer(question.with_record(record))
