"""The chain's last link: answers signed now, for nonces, several CertIDs and misses."""

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import trio

from ..config import LimitsConfig
from ..domain.answering import cert_status_name, single_for_record, unauthorized_for
from ..domain.records import CertRecord
from ..domain.timing import due_at
from ..observability import metrics
from ..ocsp import HashAlgorithm
from ..signing import SignerBusy, SignerError, ValidityExceedsCertificate
from ..store import PreSigned, StoreError
from .answer import Answer, CannotSign, Question, TryLater, Unauthorized
from .cache import AnswerCache
from .issuers import IssuerRuntime
from .presigned import RecordFetcher
from .shedding import LoopLag

log = logging.getLogger("revocd.answers")
_FROM_LIVE = metrics.ANSWER_SOURCE.labels("live")
_LIMITS = LimitsConfig()  # the defaults of server.limits


class AnswerWriter(Protocol):
    """Where a live answer that could have been pre-signed is kept (the store)."""

    async def put_answer(
        self, issuer: str, record: CertRecord, answer: PreSigned, due_at: int
    ) -> bool: ...


class LiveSigner:
    """Signs answers now. N concurrent identical questions cause one signature, and an
    answer that could have been pre-signed is written back to the store."""

    def __init__(
        self,
        writer: AnswerWriter,
        fetcher: RecordFetcher,
        cache: AnswerCache,
        nursery: trio.Nursery,
        clock: Callable[[], float] = time.time,
        write_back: int = 256,
        max_pending: int = _LIMITS.live_sign_max_pending,
        deadline: float = _LIMITS.live_sign_deadline_ms / 1000,
        loop: LoopLag | None = None,
    ) -> None:
        self.writer = writer
        self.fetcher = fetcher
        self.cache = cache
        self.nursery = nursery
        self.clock = clock
        self._in_flight: dict[tuple[str, int, bytes, int], tuple[trio.Event, list[Answer]]] = {}
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

    async def answer(self, question: Question) -> Answer:
        issuer = question.issuer
        assert issuer is not None
        self.loop.arrive()
        if self.pending >= self.max_pending:
            metrics.LIVE_SHED.labels(issuer.name, "full").inc()
            raise TryLater("live signing queue full")
        if self.loop.overloaded:
            metrics.LIVE_SHED.labels(issuer.name, "loop_lag").inc()
            raise TryLater("event loop overloaded")
        self.pending += 1
        started = time.perf_counter()
        try:
            with trio.move_on_after(self.deadline) as scope:
                return await self._answer(question, issuer)
            # RFC 6960 4.2.1 tryLater: "temporarily unable to respond"; the data plane
            # adds Retry-After. A PKCS#11 job already queued still completes (its owner
            # thread is not interrupted) and is dropped.
            assert scope.cancelled_caught
            metrics.LIVE_SHED.labels(issuer.name, "deadline").inc()
            raise TryLater("live signing deadline passed")
        finally:
            self.pending -= 1
            self.loop.charge(time.perf_counter() - started)

    async def _records(self, issuer: str, serials: list[int]) -> dict[int, CertRecord | None]:
        """Status records from the local cache, the rest through the fetcher."""
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
            _, record = await self.fetcher.fetch(issuer, serial)
            out[serial] = record
            self.cache.put_record(issuer, serial, record, since)

        if missing:
            async with trio.open_nursery() as nursery:
                for serial in missing:
                    nursery.start_soon(fetch, serial)
        return out

    async def _answer(self, question: Question, issuer: IssuerRuntime) -> Answer:
        if question.record_known:
            records: Mapping[int, CertRecord | None] = {question.single.serial: question.record}
        else:
            try:
                records = await self._records(
                    issuer.name, [c.serial for c in question.request.cert_ids]
                )
            except BaseException as exc:  # any store failure: the status is not known
                error = _single_store_error(exc)
                if error is None:
                    raise
                metrics.STORE_ERRORS.labels("records").inc()
                log.warning("store unavailable for a live answer: %s", error)
                raise TryLater(f"store unavailable: {error}", stale_ok=True) from None
        if not question.simple:
            return await self._sign(question, issuer, records)
        # Identical simple questions asked at once (a CDN's edges missing together)
        # share the first one's signature, but only when they read the same record: a
        # question that read the record after a revocation must not be handed the
        # answer signed from the record before it (the caches would keep that answer
        # as if it were read after the change).
        serial = question.single.serial
        seen = records.get(serial)
        key = (issuer.name, serial, question.single.der, seen.version if seen else -1)
        flight = self._in_flight.get(key)
        if flight is not None:
            metrics.LIVE_COALESCED.inc()
            await flight[0].wait()
            if not flight[1]:  # the leader failed or ran out of time: so would this one
                raise TryLater("coalesced live answer failed")
            return flight[1][0]
        flight = (trio.Event(), [])
        self._in_flight[key] = flight
        try:
            answer = await self._sign(question, issuer, records)
            flight[1].append(answer)
        finally:
            del self._in_flight[key]
            flight[0].set()
        return answer

    def sign_now(self, question: Question) -> Answer | None:
        """A question no cache may answer (a nonce, several CertIDs) signed at once,
        without a task or an await: for the reactor, which answers POSTs inline. None
        whenever the full path must decide: a key that does not sign inline (an HSM),
        admission (the full path sheds with tryLater), a status record not in the local
        cache, a serial to refuse, a responder certificate too short. Otherwise the
        same answer `answer` gives, counted the same."""
        issuer = question.issuer
        if issuer is None or question.simple or not issuer.identity.signs_inline:
            return None
        loop = self.loop
        loop.arrive()
        if self.pending >= self.max_pending or loop.overloaded:
            return None
        cache = self.cache
        records: dict[int, CertRecord | None] = {}
        now = int(self.clock())
        for cid in question.request.cert_ids:
            known, record = cache.get_record(issuer.name, cid.serial)
            if not known or unauthorized_for(record, issuer.unknown, issuer.expired, now):
                return None
            records[cid.serial] = record
        started = time.perf_counter()
        this_update, next_update = issuer.schedule.window(now)
        singles = [
            single_for_record(cid.der, records[cid.serial], this_update, next_update)
            for cid in question.request.cert_ids
        ]
        nonce = question.request.nonce if question.wants_nonce else None
        try:
            der = issuer.identity.sign_now(singles, now, nonce)
        except (SignerError, ValidityExceedsCertificate):
            return None  # the full path counts and logs it, and answers
        finally:
            loop.charge(time.perf_counter() - started)
        issuer.live_signatures.inc()
        _FROM_LIVE.inc()
        status = cert_status_name(records[question.single.serial]) if len(singles) == 1 else "multi"
        return Answer.signed(der, singles[0], issuer.schedule, "live", False, status)

    async def _sign(
        self, question: Question, issuer: IssuerRuntime, records: Mapping[int, CertRecord | None]
    ) -> Answer:
        now = int(self.clock())
        this_update, next_update = issuer.schedule.window(now)
        singles = []
        for cid in question.request.cert_ids:
            record = records.get(cid.serial)
            if unauthorized_for(record, issuer.unknown, issuer.expired, now):
                if record is not None:
                    raise Unauthorized(
                        f"serial {cid.serial:x} of {issuer.name} has expired (expired = "
                        "unauthorized)"
                    )
                raise Unauthorized(f"serial {cid.serial:x} was never issued by {issuer.name}")
            singles.append(single_for_record(cid.der, record, this_update, next_update))
        nonce = question.request.nonce if question.wants_nonce else None
        try:
            der = await issuer.identity.sign(singles, now, nonce)
        except SignerBusy:
            metrics.SIGN_ERRORS.labels(issuer.name, "busy").inc()
            raise TryLater("signer busy") from None
        except ValidityExceedsCertificate:
            metrics.SIGN_ERRORS.labels(issuer.name, "responder_cert_expiring").inc()
            log.error(
                "issuer %s: responder certificate ends before nextUpdate; not signing", issuer.name
            )
            raise CannotSign("responder certificate ends before nextUpdate") from None
        except SignerError as exc:
            metrics.SIGN_ERRORS.labels(issuer.name, "error").inc()
            log.error("issuer %s: signing failed: %s", issuer.name, exc)
            raise TryLater(f"signing failed: {exc}") from None
        issuer.live_signatures.inc()
        _FROM_LIVE.inc()
        single = question.single
        record = records.get(single.serial)
        status = cert_status_name(record) if len(singles) == 1 else "multi"
        answer = Answer.signed(der, singles[0], issuer.schedule, "live", question.simple, status)
        # The answer the pre-signer would have made (simple, SHA-1, the issuer's own
        # CertID hashes): keep it in the store so other processes and restarts serve it.
        if (
            question.simple
            and record is not None
            and single.hash_algorithm == HashAlgorithm.SHA1
            and single.der == issuer.hashes.cert_id(HashAlgorithm.SHA1, record.serial)
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
                await self.writer.put_answer(issuer, record, presigned, due)
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
