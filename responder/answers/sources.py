"""Answer sources. Each is small, testable alone, and wraps the next:

    IssuerFilter → CachedSource → StoreSource → LiveSigner

`build_chain` is the one place they are put together. A request with a nonce
the issuer echoes, or with several CertIDs, skips the cache and the pre-signed
answers and is signed live.
"""

import hashlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import trio

from ..config import IssuerConfig, LimitsConfig
from ..domain.answering import (
    NoncePolicy,
    UnknownAnswer,
    cacheable,
    cert_status_name,
    echoes_nonce,
    issuer_of,
    single_for_record,
    unauthorized_for,
)
from ..domain.timing import Schedule, due_at
from ..failures import describe, recoverable
from ..http.protocol import http_date
from ..observability import metrics
from ..ocsp import (
    CertID,
    HashAlgorithm,
    IssuerHashes,
    OCSPRequest,
    ResponseStatus,
    SingleAnswer,
    error_response,
)
from ..signing import ResponderIdentity, SignerBusy, SignerError, ValidityExceedsCertificate
from ..store import CertRecord, PreSigned, Store, StoreError

log = logging.getLogger("revocd.answers")
_FROM_CACHE = metrics.ANSWER_SOURCE.labels("cache")
_FROM_LIVE = metrics.ANSWER_SOURCE.labels("live")
_LIMITS = LimitsConfig()  # the defaults of server.limits
RECORD_TTL = 60.0
INVALIDATION_MEMORY = 100_000


@dataclass(frozen=True, slots=True)
class Answer:
    """What the data plane sends: DER plus what HTTP caching needs."""

    der: bytes
    status: ResponseStatus = ResponseStatus.SUCCESSFUL
    this_update: int = 0
    next_update: int = 0
    refresh_at: int = 0  # caches (ours, CDNs) keep the answer until then
    cacheable: bool = False
    etag: bytes = b""
    source: str = "error"
    cert_status: str = ""
    # Content-Type, Last-Modified, Expires and ETag header lines, formatted once per answer
    header_block: bytes = b""
    # What a 304 for it carries of those (RFC 9110 15.4.5): the validator and Expires
    not_modified_block: bytes = b""

    @classmethod
    def error(cls, status: ResponseStatus) -> "Answer":
        return cls(error_response(status), status)

    @classmethod
    def signed(
        cls,
        der: bytes,
        single: SingleAnswer | PreSigned,
        schedule: Schedule,
        source: str,
        cacheable: bool,
        cert_status: str,
    ) -> "Answer":
        assert single.next_update is not None
        etag = b'"' + hashlib.sha256(der).hexdigest().encode() + b'"'
        validators = b"Expires: " + http_date(single.next_update) + b"\r\nETag: " + etag + b"\r\n"
        block = (
            b"Content-Type: application/ocsp-response\r\nLast-Modified: "
            + http_date(single.this_update)
            + b"\r\n"
            + validators
        )
        return cls(
            der,
            ResponseStatus.SUCCESSFUL,
            single.this_update,
            single.next_update,
            schedule.refresh_at(single.this_update, single.next_update),
            cacheable,
            etag,
            source,
            cert_status,
            block,
            validators,
        )


@dataclass(slots=True)
class Query:
    """One OCSP request on its way through the sources."""

    request: OCSPRequest
    issuer: "IssuerRuntime | None" = None
    record: CertRecord | None = None
    record_known: bool = False  # the store was asked (record None then means never issued)
    store_down: bool = False
    target: bytes | None = None  # the GET request target, for the cache's URL index
    epoch: int = 0  # the cache's invalidation epoch when the lookup began

    @property
    def single(self) -> CertID:
        return self.request.cert_ids[0]

    @property
    def wants_nonce(self) -> bool:
        return self.issuer is not None and echoes_nonce(self.request.nonce, self.issuer.nonce)

    @property
    def simple(self) -> bool:
        """One CertID and no nonce to echo: the case caches and pre-signed answers serve."""
        return cacheable(len(self.request.cert_ids), self.wants_nonce)


class AnswerSource(Protocol):
    async def lookup(self, query: Query) -> Answer: ...


@dataclass
class IssuerRuntime:
    """An issuer as the responder serves it: identity, hashes, policy knobs."""

    config: IssuerConfig
    identity: ResponderIdentity
    schedule: Schedule = field(default_factory=Schedule)
    nonce: NoncePolicy = NoncePolicy.ECHO
    unknown: UnknownAnswer = UnknownAnswer.UNKNOWN
    hashes: IssuerHashes = field(init=False)
    live_signatures: "metrics.Counter" = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.hashes = IssuerHashes.from_certificate(self.identity.issuer)
        self.live_signatures = metrics.LIVE_SIGNATURES.labels(self.config.name)

    @property
    def name(self) -> str:
        return self.config.name


class IssuerFilter:
    """Maps each CertID to an issuer revocd serves; anything else is `unauthorized`."""

    def __init__(self, inner: AnswerSource, issuers: Sequence[IssuerRuntime]) -> None:
        self.inner = inner
        self.index: dict[tuple[int, bytes, bytes], IssuerRuntime] = {}
        for issuer in issuers:
            for alg in HashAlgorithm:
                key = (int(alg), issuer.hashes.name_hashes[alg], issuer.hashes.key_hashes[alg])
                self.index[key] = issuer

    async def lookup(self, query: Query) -> Answer:
        found = issuer_of(query.request.cert_ids, self.index)
        if found is None:
            return Answer.error(ResponseStatus.UNAUTHORIZED)
        query.issuer = found
        return await self.inner.lookup(query)


class AnswerCache:
    """Bounded LRU of signed answers, keyed by issuer, serial and CertID hash algorithm.

    Entries are served until their refresh time; while the store is down they are
    served until nextUpdate, since they are still valid answers.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int, int], Answer] = OrderedDict()
        self._by_serial: dict[tuple[str, int], set[int]] = {}
        # GET request target -> cache key, so a repeated GET skips decoding; the key is
        # looked up in _entries each time, so invalidation needs nothing here.
        self.urls: dict[bytes, tuple[str, int, int]] = {}
        # Status records for live answers (nonces, several CertIDs), dropped on change like
        # answers, and after RECORD_TTL seconds in case a notification was missed.
        self.records: OrderedDict[tuple[str, int], tuple[CertRecord | None, float]] = OrderedDict()
        # A lookup that began before an invalidation must not cache what it found:
        # `epoch` counts invalidations, `_invalidated` remembers when each serial's was.
        self.epoch = 0
        self._cleared_at = 0
        self._invalidated: OrderedDict[tuple[str, int], int] = OrderedDict()

    def stale(self, issuer: str, serial: int, since: int) -> bool:
        """Whether (issuer, serial) was invalidated after epoch `since`."""
        if self._cleared_at > since:
            return True
        return self._invalidated.get((issuer, serial), -1) > since

    def get_record(self, issuer: str, serial: int) -> tuple[bool, CertRecord | None]:
        found = self.records.get((issuer, serial))
        if found is None or time.monotonic() - found[1] > RECORD_TTL:
            return False, None
        return True, found[0]

    def put_record(self, issuer: str, serial: int, record: CertRecord | None, since: int) -> None:
        if self.stale(issuer, serial, since):
            return
        self.records[(issuer, serial)] = (record, time.monotonic())
        self.records.move_to_end((issuer, serial))
        while len(self.records) > self.max_entries:
            self.records.popitem(last=False)

    def remember_url(self, target: bytes, key: tuple[str, int, int]) -> None:
        if len(self.urls) >= self.max_entries * 2:
            self.urls.clear()
        self.urls[target] = key

    def get_url(self, target: bytes, now: int) -> Answer | None:
        key = self.urls.get(target)
        if key is None:
            return None
        answer = self._entries.get(key)
        if answer is None or now >= answer.refresh_at:
            return None
        return answer

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, int, int], now: int, stale_ok: bool = False) -> Answer | None:
        answer = self._entries.get(key)
        if answer is None:
            return None
        limit = answer.next_update if stale_ok else answer.refresh_at
        if now >= limit:
            if now >= answer.next_update:
                self._drop(key)
            return None
        self._entries.move_to_end(key)
        return answer

    def put(self, key: tuple[str, int, int], answer: Answer) -> None:
        self._entries[key] = answer
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

    def _drop(self, key: tuple[str, int, int]) -> None:
        self._entries.pop(key, None)
        self._forget(key)

    def _forget(self, key: tuple[str, int, int]) -> None:
        algs = self._by_serial.get((key[0], key[1]))
        if algs is not None:
            algs.discard(key[2])
            if not algs:
                del self._by_serial[(key[0], key[1])]


class CachedSource:
    """Serves repeated questions from process memory, without touching the store."""

    def __init__(self, inner: AnswerSource, cache: AnswerCache) -> None:
        self.inner = inner
        self.cache = cache

    async def lookup(self, query: Query) -> Answer:
        if not query.simple:
            return await self.inner.lookup(query)
        assert query.issuer is not None
        cid = query.single
        key = (query.issuer.name, cid.serial, cid.hash_algorithm)
        now = int(time.time())
        hit = self.cache.get(key, now)
        if hit is not None:
            _FROM_CACHE.inc()
            if query.target is not None:
                self.cache.remember_url(query.target, key)
            return hit
        query.epoch = self.cache.epoch
        answer = await self.inner.lookup(query)
        if answer.cacheable and not self.cache.stale(key[0], key[1], query.epoch):
            self.cache.put(key, answer)
            if query.target is not None:
                self.cache.remember_url(query.target, key)
        elif answer.status is ResponseStatus.TRY_LATER and query.store_down:
            stale = self.cache.get(key, now, stale_ok=True)
            if stale is not None:
                metrics.ANSWER_SOURCE.labels("cache_store_down").inc()
                return stale
        return answer


class _Pending:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: tuple[PreSigned | None, CertRecord | None] = (None, None)
        self.error: BaseException | None = None


class MissBatcher:
    """Collects concurrent cache misses and fetches them in as few round trips as possible.

    While one fetch is in flight, new misses queue up and go together in the next;
    concurrent misses for the same serial share one fetch.
    """

    def __init__(self, store: Store, max_batch: int = 512) -> None:
        self.store = store
        self.max_batch = max_batch
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._wake = trio.Event()

    async def fetch(self, issuer: str, serial: int) -> tuple[PreSigned | None, CertRecord | None]:
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
                with trio.fail_after(2):
                    found = await self.store.lookup_many(issuer, serials)
                for serial in serials:
                    batch[(issuer, serial)].value = found.get(serial, (None, None))
        except Exception as exc:  # store down or slow: each waiter decides what to answer
            metrics.STORE_ERRORS.labels("lookup").inc()
            for waiter in batch.values():
                waiter.error = exc
        for waiter in batch.values():
            waiter.done.set()


class StoreSource:
    """Pre-signed answers (SHA-1 CertIDs, as the pre-signer makes them) and the status record."""

    def __init__(self, inner: AnswerSource, batcher: MissBatcher, cache: AnswerCache) -> None:
        self.inner = inner
        self.batcher = batcher
        self.cache = cache

    async def lookup(self, query: Query) -> Answer:
        if not query.simple:
            return await self.inner.lookup(query)
        assert query.issuer is not None
        cid = query.single
        try:
            presigned, record = await self.batcher.fetch(query.issuer.name, cid.serial)
        except StoreError:
            query.store_down = True
            return Answer.error(ResponseStatus.TRY_LATER)
        query.record, query.record_known = record, True
        self.cache.put_record(query.issuer.name, cid.serial, record, query.epoch)
        now = int(time.time())
        if (
            presigned is not None
            and cid.hash_algorithm == HashAlgorithm.SHA1
            and now < query.issuer.schedule.refresh_at(presigned.this_update, presigned.next_update)
        ):
            metrics.ANSWER_SOURCE.labels("store").inc()
            return Answer.signed(
                presigned.der,
                presigned,
                query.issuer.schedule,
                "store",
                True,
                cert_status_name(record),
            )
        return await self.inner.lookup(query)


class LoopLag:
    """How late the event loop runs: the time a newly readable connection waits for its
    turn. A monitor task sleeps `TICK` and measures how much later it woke; the figure
    rises at once and decays by half each tick, so one slow pass is seen and a
    recovered loop is trusted again within a few ticks.

    Live signing is refused (tryLater) while the lag is over `limit`: a signature
    costs several times a refusal, so shedding signatures is what brings every other
    request's wait, cached GETs included, back under the limit."""

    TICK = 0.005
    # A lookup that took longer than this awaited something (an HSM, the store): its
    # time was not spent on this loop, so it is not charged (max_pending bounds those).
    INLINE = 0.005
    # Held connections released per calm tick (see `hold`).
    RELEASE = 16
    # Live signing may take this share of the loop before lag counts as its fault.
    LIVE_SHARE = 0.25
    # Fewer live requests than this per pass are always signed: they can delay the
    # others by at most FLOOR signatures (a few ms), and refusing a handful of clients
    # (16 OCSP checkers during a mass revocation) would not make anything faster.
    FLOOR = 32

    def __init__(self, limit: float = float("inf")) -> None:
        self.limit = limit
        self.lag = 0.0
        self._held = trio.lowlevel.ParkingLot()
        # Signing time charged since the monitor last woke. Every request of one pass
        # sees the same `lag`, so without this the pass after a calm one would admit
        # every signature in it and overshoot the limit many times over.
        self.spent = 0.0
        # Share of the loop's time spent signing live, averaged over a few ticks.
        self.share = 0.0
        # Live requests since the last tick, and the recent peak (halved each tick).
        self.arrivals = 0
        self.recent = 0.0

    @property
    def overloaded(self) -> bool:
        """Late, and live signing is what makes it late. A loop slowed by other work (a
        pre-sign sweep re-signing after a mass revocation, a CRL build) still signs the
        few live answers asked meanwhile: refusing them would not make it faster."""
        if max(self.arrivals, self.recent) < self.FLOOR:
            return False  # too few live requests to make anyone wait long: sign them
        if self.lag + self.spent <= self.limit:
            return False
        return self.share > self.LIVE_SHARE or self.spent > self.limit

    def arrive(self) -> None:
        self.arrivals += 1

    def charge(self, seconds: float) -> None:
        if seconds < self.INLINE:
            self.spent += seconds

    async def hold(self, pause: float) -> None:
        """Keep a connection that was told tryLater from sending its next request for
        up to `pause` (jittered), releasing it early once the loop is calm again.

        The held connections wait in one parking lot that the monitor opens RELEASE
        at a time per calm tick: a passing spike costs them one tick, while under a
        flood they come back no faster than the loop can take them (woken all at
        once, a thousand connections would be the next spike)."""
        with trio.move_on_after(pause * (0.5 + random.random())):
            await self._held.park()

    async def run(self) -> None:
        clock = trio.current_time
        while True:
            started = clock()
            await trio.sleep(self.TICK)
            elapsed = clock() - started
            late = elapsed - self.TICK
            self.lag = max(late, self.lag * 0.5)
            self.share = 0.8 * self.share + 0.2 * min(1.0, self.spent / elapsed)
            self.spent = 0.0
            self.recent = max(float(self.arrivals), self.recent * 0.5)
            self.arrivals = 0
            if not self.overloaded and self._held:
                self._held.unpark(count=self.RELEASE)
            metrics.LOOP_LAG.observe(late)


class LiveSigner:
    """Signs answers now. N concurrent identical questions cause one signature, and an
    answer that could have been pre-signed is written back to the store."""

    def __init__(
        self,
        store: Store,
        nursery: trio.Nursery,
        cache: AnswerCache,
        batcher: MissBatcher,
        write_back: int = 256,
        max_pending: int = _LIMITS.live_sign_max_pending,
        deadline: float = _LIMITS.live_sign_deadline_ms / 1000,
        loop: "LoopLag | None" = None,
    ) -> None:
        self.store = store
        self.nursery = nursery
        self.cache = cache
        self.batcher = batcher
        self._in_flight: dict[tuple[str, int, bytes], tuple[trio.Event, list[Answer]]] = {}
        self._write_back = trio.Semaphore(write_back)
        # Admission (server.limits.live_sign_*): at most max_pending answers on their way
        # to the signer, each answered within `deadline` or given tryLater. Without it a
        # flood of nonce POSTs queues without bound and every client waits seconds; with
        # it the excess is told to come back at once and the rest keep their latency.
        self.max_pending = max_pending
        self.deadline = deadline
        self.pending = 0
        # Software keys sign inline, so their queue is trio's run queue, not `pending`:
        # the event loop's lag is what says a new signature would be late.
        self.loop = loop or LoopLag()

    async def lookup(self, query: Query) -> Answer:
        issuer = query.issuer
        assert issuer is not None
        self.loop.arrive()
        if self.pending >= self.max_pending:
            metrics.LIVE_SHED.labels(issuer.name, "full").inc()
            return Answer.error(ResponseStatus.TRY_LATER)
        if self.loop.overloaded:
            metrics.LIVE_SHED.labels(issuer.name, "loop_lag").inc()
            return Answer.error(ResponseStatus.TRY_LATER)
        self.pending += 1
        started = time.perf_counter()
        try:
            with trio.move_on_after(self.deadline) as scope:
                return await self._lookup(query, issuer)
            # RFC 6960 4.2.1 tryLater: "temporarily unable to respond"; the data plane
            # adds Retry-After. A PKCS#11 job already queued still completes (its owner
            # thread is not interrupted) and is dropped.
            assert scope.cancelled_caught
            metrics.LIVE_SHED.labels(issuer.name, "deadline").inc()
            return Answer.error(ResponseStatus.TRY_LATER)
        finally:
            self.pending -= 1
            self.loop.charge(time.perf_counter() - started)

    async def _records(self, issuer: str, serials: list[int]) -> dict[int, CertRecord | None]:
        """Status records from the local cache, the rest through the miss batcher."""
        out: dict[int, CertRecord | None] = {}
        since = self.cache.epoch
        missing = []
        for serial in serials:
            known, record = self.cache.get_record(issuer, serial)
            if known:
                out[serial] = record
            else:
                missing.append(serial)

        async def fetch(serial: int) -> None:
            _, record = await self.batcher.fetch(issuer, serial)
            out[serial] = record
            self.cache.put_record(issuer, serial, record, since)

        if missing:
            async with trio.open_nursery() as nursery:
                for serial in missing:
                    nursery.start_soon(fetch, serial)
        return out

    async def _lookup(self, query: Query, issuer: IssuerRuntime) -> Answer:
        if not query.record_known:
            try:
                records = await self._records(
                    issuer.name, [c.serial for c in query.request.cert_ids]
                )
            except BaseException as exc:  # any store failure: the status is not known
                error = _single_store_error(exc)
                if error is None:
                    raise
                metrics.STORE_ERRORS.labels("records").inc()
                log.warning("store unavailable for a live answer: %s", error)
                query.store_down = True
                return Answer.error(ResponseStatus.TRY_LATER)
        else:
            records = {query.single.serial: query.record}
        if query.simple:
            key = (issuer.name, query.single.serial, query.single.der)
            flight = self._in_flight.get(key)
            if flight is not None:
                metrics.LIVE_COALESCED.inc()
                await flight[0].wait()
                # the leader failed or ran out of time: so would this request
                return flight[1][0] if flight[1] else Answer.error(ResponseStatus.TRY_LATER)
            flight = (trio.Event(), [])
            self._in_flight[key] = flight
            try:
                answer = await self._sign(query, issuer, records)
                flight[1].append(answer)
            finally:
                del self._in_flight[key]
                flight[0].set()
            return answer
        return await self._sign(query, issuer, records)

    async def _sign(
        self, query: Query, issuer: IssuerRuntime, records: Mapping[int, CertRecord | None]
    ) -> Answer:
        now = int(time.time())
        this_update, next_update = issuer.schedule.window(now)
        singles = []
        for cid in query.request.cert_ids:
            record = records.get(cid.serial)
            if unauthorized_for(record, issuer.unknown):
                return Answer.error(ResponseStatus.UNAUTHORIZED)
            singles.append(single_for_record(cid.der, record, this_update, next_update))
        nonce = query.request.nonce if query.wants_nonce else None
        try:
            der = await issuer.identity.sign(singles, now, nonce)
        except SignerBusy:
            metrics.SIGN_ERRORS.labels(issuer.name, "busy").inc()
            return Answer.error(ResponseStatus.TRY_LATER)
        except ValidityExceedsCertificate:
            metrics.SIGN_ERRORS.labels(issuer.name, "responder_cert_expiring").inc()
            log.error(
                "issuer %s: responder certificate ends before nextUpdate; not signing", issuer.name
            )
            return Answer.error(ResponseStatus.INTERNAL_ERROR)
        except SignerError as exc:
            metrics.SIGN_ERRORS.labels(issuer.name, "error").inc()
            log.error("issuer %s: signing failed: %s", issuer.name, exc)
            return Answer.error(ResponseStatus.TRY_LATER)
        issuer.live_signatures.inc()
        _FROM_LIVE.inc()
        cacheable = query.simple
        single_id = len(query.request.cert_ids) == 1
        status = cert_status_name(records.get(query.single.serial)) if single_id else "multi"
        answer = Answer.signed(der, singles[0], issuer.schedule, "live", cacheable, status)
        record = records.get(query.single.serial)
        if (
            query.simple
            and record is not None
            and not query.store_down
            and query.single.hash_algorithm == HashAlgorithm.SHA1
            and query.single.der == issuer.hashes.cert_id(HashAlgorithm.SHA1, record.serial)
        ):
            due = due_at(issuer.schedule, record.serial, this_update, next_update)
            self._store_later(issuer.name, record, PreSigned(this_update, next_update, der), due)
        return answer

    def _store_later(self, issuer: str, record: CertRecord, presigned: PreSigned, due: int) -> None:
        if self._write_back.value == 0:
            return  # the store is slow; the pre-signer will fill this in
        self.nursery.start_soon(self._write, issuer, record, presigned, due)

    async def _write(self, issuer: str, record: CertRecord, presigned: PreSigned, due: int) -> None:
        async with self._write_back:
            try:
                await self.store.put_answer(issuer, record, presigned, due)
            except Exception as exc:
                metrics.STORE_ERRORS.labels("write_back").inc()
                log.debug("write-back failed: %s", exc)


def _single_store_error(exc: BaseException) -> StoreError | None:
    """The StoreError inside `exc` (possibly wrapped by a nursery), or None."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        errors = [_single_store_error(e) for e in exc.exceptions]
        if errors and all(e is not None for e in errors):
            return errors[0]
    return None


def build_chain(
    issuers: Sequence[IssuerRuntime],
    cache: AnswerCache,
    store: Store,
    batcher: MissBatcher,
    nursery: trio.Nursery,
    live_max_pending: int,
    live_deadline: float,
    loop: LoopLag,
) -> AnswerSource:
    """The one place the sources are composed."""
    live = LiveSigner(
        store,
        nursery,
        cache,
        batcher,
        max_pending=live_max_pending,
        deadline=live_deadline,
        loop=loop,
    )
    return IssuerFilter(CachedSource(StoreSource(live, batcher, cache), cache), issuers)


async def follow_changes(store: Store, cache: AnswerCache) -> None:
    """Drop cached answers whose status changed; a (re)started subscription clears the cache,
    because notifications sent while it was down are lost."""
    while True:
        try:
            async with store.subscribe_changes() as changes:
                cache.clear()
                metrics.CHANGE_FEED_RESTARTS.inc()
                async for change in changes:
                    cache.invalidate(change.issuer, change.serial)
                    if change.at_ms:
                        metrics.PROPAGATION.observe(max(0.0, time.time() - change.at_ms / 1000))
        except BaseException as exc:
            if not recoverable(exc):
                raise
            metrics.STORE_ERRORS.labels("subscribe").inc()
            log.warning("change subscription lost (%s); retrying", describe(exc))
            cache.clear()
        await trio.sleep(0.5)
