"""The pre-signer: a fresh signed answer in the store for every issued certificate.

A sweep visits every partition of every issuer and signs what is due: answers that are
missing (new certificates, or deleted because the status changed) and answers past
their re-sign time (BR 4.9.10: half-life under 16 h of validity, otherwise at least
8 h before nextUpdate and at most 4 days after thisUpdate). Each certificate's re-sign
time is pulled earlier by a jitter derived from its serial (up to a tenth of the
validity), so certificates issued in a burst are not all re-signed in the same burst.

What is due comes from each partition's due index (a sorted set of serials by re-sign
time, kept by the store's scripts), so a sweep reads only what it signs: with nothing
due it costs one range query per partition, however many certificates there are.

Status changes come first: the pre-signer consumes the process's change feed
(changes.py) and re-signs a changed certificate (a revocation) before anything in the
sweep, from the record the feed already fetched. Writes go
back under the record version, so an answer signed from a status that changed
meanwhile is discarded rather than stored.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from .answers.issuers import IssuerRuntime
from .audit.trail import AuditTrail
from .changes import ChangeHub, FeedItem, Resync
from .domain.answering import single_for_record
from .domain.timing import due_at
from .failures import describe, recoverable
from .observability import metrics
from .ocsp import HashAlgorithm
from .signing import SignerBusy, SignerError
from .store import CertRecord, PreSigned, Status
from .store.keys import partition_of
from .store.leases import Leases
from .store.protocols import PresignStore

log = logging.getLogger("revocd.presign")

# A partition above this many records is reported (log line and metric): its keys are
# large enough to stall the server when moved or deleted; docs/store.md, "Sizing".
PARTITION_WARN = 1_000_000
# Answers due next that a sweep reads back to report how old and how close to expiry
# the stored answers are (due order follows nextUpdate to within the jitter).
PEEK = 8


@dataclass(frozen=True)
class PresignSettings:
    sweep_interval: float = 300.0
    batch: int = 256
    concurrency: int = 4


def lease_name(issuer: str, partition: int) -> str:
    return f"presign:{issuer}:{partition}"


def expired(record: CertRecord, now: int) -> bool:
    return record.not_after is not None and record.not_after < now


class Presigner:
    """Owned by the service (or `revocd presign`); runs in the caller's nursery."""

    def __init__(
        self,
        store: PresignStore,
        issuers: Sequence[IssuerRuntime],
        settings: PresignSettings | None = None,
        audit: AuditTrail | None = None,
        leases: Leases | None = None,
        clock: Callable[[], float] = time.time,
        on_signed: "Callable[[str, list[CertRecord]], Awaitable[None]] | None" = None,
    ) -> None:
        # Told which revoked records' answers were just stored (the propagation
        # ledger's "signed" step, propagation/ledger.py)
        self.on_signed = on_signed
        # Wall-clock time (thisUpdate, nextUpdate, due times), injected so that unit
        # tests can fix it; durations use the monotonic clock.
        self.clock = clock
        self.audit = audit
        # With leases, this process signs only the partitions it holds a lease for, so
        # several revocd processes on one store sign each answer once between them.
        self.leases = leases
        self.store = store
        self.issuers = {i.name: i for i in issuers}
        self.settings = settings or PresignSettings()
        self._urgent_send, self._urgent = trio.open_memory_channel[tuple[str, CertRecord]](100_000)
        self.oldest_this_update: int | None = None
        self._taken_over = trio.Event()

    async def run(
        self,
        feed: "trio.MemoryReceiveChannel[FeedItem] | None" = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Sweep forever. `feed` is this process's change feed (changes.py); without
        one (`revocd presign`, tests) the pre-signer subscribes on its own."""
        async with trio.open_nursery() as nursery:
            if feed is None:
                hub = ChangeHub(self.store, self.issuers)
                feed = hub.subscribe("presign", records=True)
                nursery.start_soon(hub.run)
            nursery.start_soon(self._follow_changes, feed)
            nursery.start_soon(self._urgent_worker)
            if self.leases is not None:
                # The first round of leases is taken before the first sweep needs them.
                await nursery.start(self._keep_leases)
            task_status.started()
            try:
                await self._sweep_forever()
            finally:
                if self.leases is not None:
                    with trio.CancelScope(shield=True), trio.move_on_after(2):
                        await self.leases.release_all()

    async def _mine(self, issuer: str, partition: int) -> bool:
        """Whether this process signs the partition now. Only the keeper takes leases
        (so that the balance it keeps holds); here a held lease is only extended."""
        if self.leases is None:
            return True
        name = lease_name(issuer, partition)
        return self.leases.trusted(name) or (
            self.leases.holds(name) and await self.leases.hold(name)
        )

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except BaseException as exc:  # the next sweep tries again
                if not recoverable(exc):
                    raise
                metrics.PRESIGN_ERRORS.labels("sweep").inc()
                log.error("pre-sign sweep failed: %s", describe(exc))
            # Sleep until the next sweep, or until the lease keeper took over partitions
            # whose holder died: those are swept at once.
            with trio.move_on_after(self.settings.sweep_interval):
                await self._taken_over.wait()
            self._taken_over = trio.Event()

    async def _keep_leases(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Hold this process's share of the partition leases (leases.py: balance), a few
        times per lease period. Partitions newly taken (their holder died, stopped or gave
        them back) wake the sweep, so they are swept at once."""
        assert self.leases is not None
        names = [lease_name(i, p) for i in self.issuers for p in range(self.store.partitions(i))]
        held: set[str] = set()
        first = True
        while True:
            now_held = await self.leases.balance("presign", names)
            metrics.LEASES_HELD.labels("presign").set(len(now_held))
            # The first round takes what the first sweep is about to visit anyway.
            if now_held - held and not first:
                self._taken_over.set()
            held = now_held
            if first:
                task_status.started()
                first = False
            await trio.sleep(self.leases.ttl / 4)

    async def sweep(self) -> int:
        """One pass over what is due in every partition held; returns answers stored."""
        started = time.monotonic()
        stored = 0
        oldest: int | None = None
        chunk = self.settings.batch * self.settings.concurrency
        for issuer in self.issuers.values():
            now = int(self.clock())
            # The earliest nextUpdate left standing: answers not due, and due answers
            # whose replacement was not stored (signer busy or failing).
            soonest: int | None = None
            largest = 0
            mine = [
                p
                for p in range(self.store.partitions(issuer.name))
                if await self._mine(issuer.name, p)  # else another process holds it
            ]
            backlog = 0
            for p in mine:
                backlog += await self.store.count_due(issuer.name, p, now)
            metrics.PRESIGN_BACKLOG.labels(issuer.name).set(backlog)
            for p in mine:
                largest = max(largest, await self.store.partition_size(issuer.name, p))
                skip = 0  # due entries of this partition left due (not stored)
                while True:
                    serials = await self.store.due_serials(issuer.name, p, now, skip, chunk)
                    if not serials:
                        break
                    records = await self.store.get_records(issuer.name, serials)
                    todo = [r for r in records.values() if not expired(r, now)]
                    # Expired (answered live if anyone still asks) or without a record:
                    # out of the index.
                    kept = {r.serial for r in todo}
                    await self.store.drop_due(issuer.name, p, [s for s in serials if s not in kept])
                    done = await self._sign_all(issuer, todo)
                    stored += done
                    skip += len(todo) - done
                    backlog -= len(serials)
                    metrics.PRESIGN_BACKLOG.labels(issuer.name).set(max(0, backlog))
                    if len(serials) < chunk:
                        break
                nxt = await self.store.next_due(issuer.name, p, PEEK)
                for answer in (await self.store.get_answers(issuer.name, p, nxt)).values():
                    if oldest is None or answer.this_update < oldest:
                        oldest = answer.this_update
                    if soonest is None or answer.next_update < soonest:
                        soonest = answer.next_update
            metrics.PRESIGN_BACKLOG.labels(issuer.name).set(0)
            metrics.PARTITION_RECORDS_MAX.labels(issuer.name).set(largest)
            if largest > PARTITION_WARN:
                log.warning(
                    "issuer %s: a partition holds %d records (over %d): choose more "
                    "partitions for this issuer's successor (docs/store.md, Sizing)",
                    issuer.name,
                    largest,
                    PARTITION_WARN,
                )
            if soonest is not None:
                await self._note_soonest(issuer, soonest)
        self.oldest_this_update = oldest
        if oldest is not None:
            metrics.PRESIGN_OLDEST_AGE.set(int(self.clock()) - oldest)
        log.info("pre-sign sweep: %d answers stored in %.1f s", stored, time.monotonic() - started)
        return stored

    async def _note_soonest(self, issuer: IssuerRuntime, next_update: int) -> None:
        left = next_update - int(self.clock())
        metrics.ANSWER_SOONEST_EXPIRY.labels(issuer.name).set(left)
        if self.audit is None:
            return
        # Short-lived answers are always close to expiry; warn relative to their validity.
        threshold = min(self.audit.answer_expiry_warning, issuer.schedule.validity // 4)
        if left < threshold:
            await self.audit.anomaly_once(
                "answers_near_expiry",
                issuer.name,
                3600,
                issuer=issuer.name,
                seconds_left=left,
                threshold_seconds=threshold,
            )

    async def _sign_all(self, issuer: IssuerRuntime, records: list[CertRecord]) -> int:
        stored = 0
        batch = self.settings.batch

        async def one_batch(chunk: list[CertRecord]) -> None:
            nonlocal stored
            done = await self.sign_and_store(issuer, chunk, "sweep")  # then add (see put_answers)
            stored += done

        limiter = trio.CapacityLimiter(self.settings.concurrency)

        async def limited(chunk: list[CertRecord]) -> None:
            async with limiter:
                await one_batch(chunk)

        async with trio.open_nursery() as nursery:
            for start in range(0, len(records), batch):
                nursery.start_soon(limited, records[start : start + batch])
        return stored

    async def sign_and_store(
        self, issuer: IssuerRuntime, records: list[CertRecord], why: str
    ) -> int:
        """Sign SHA-1-CertID answers (what RFC 9919 clients ask for) and store them."""
        now = int(self.clock())
        # nothing pre-signed for an expired certificate (the sweep skips them too): it is
        # answered live, by the issuer's `expired` policy
        records = [r for r in records if not expired(r, now)]
        if not records:
            return 0
        this_update, next_update = issuer.schedule.window(now)
        items: list[tuple[CertRecord, PreSigned, int]] = []
        for record in records:
            cert_id = issuer.hashes.cert_id(HashAlgorithm.SHA1, record.serial)
            single = single_for_record(cert_id, record, this_update, next_update)
            try:
                der = await issuer.identity.sign([single], now)
            except SignerBusy:
                await trio.sleep(0.05)  # live answers have priority for the signer
                continue
            except (SignerError, ValueError) as exc:
                metrics.PRESIGN_ERRORS.labels("sign").inc()
                log.error("pre-sign for %s failed: %s", issuer.name, exc)
                return 0
            # the single's own nextUpdate: capped at a certificate's notAfter
            until = single.next_update or next_update
            due = due_at(issuer.schedule, record.serial, this_update, until)
            items.append((record, PreSigned(this_update, until, der), due))
        stored = await self.store.put_answers(issuer.name, items)
        metrics.PRESIGNED.labels(issuer.name, why).inc(stored)
        if self.on_signed is not None:
            # Revocations of the last day (the ledger records a first signature once;
            # older ones have theirs, and a sweep re-signs them all)
            recent = now - 86400
            revoked = [
                r for r, _, _ in items if r.status is Status.REVOKED and r.updated_at >= recent
            ]
            if revoked:
                await self.on_signed(issuer.name, revoked)
        return stored

    async def _follow_changes(self, feed: "trio.MemoryReceiveChannel[FeedItem]") -> None:
        """Changed certificates (revocations first of all) are re-signed as they come,
        from the records the feed fetched. A Resync needs nothing here: the sweep finds
        whatever the missed notifications made due (the due index is in the store)."""
        async with feed:
            async for item in feed:
                if isinstance(item, Resync):
                    continue
                for changed in item:
                    record = changed.record
                    if record is None or changed.change.issuer not in self.issuers:
                        continue
                    try:
                        self._urgent_send.send_nowait((changed.change.issuer, record))
                    except trio.WouldBlock:
                        metrics.PRESIGN_ERRORS.labels("urgent_queue_full").inc()

    async def _urgent_worker(self) -> None:
        """Re-sign what the feed delivered, in batches, revocations first."""
        async for issuer_name, record in self._urgent:
            pending = {(issuer_name, record.serial): record}
            while len(pending) < self.settings.batch:
                try:
                    name, more = self._urgent.receive_nowait()
                except trio.WouldBlock:
                    break
                pending[(name, more.serial)] = more  # the newest record of a serial wins
            by_issuer: dict[str, list[CertRecord]] = {}
            for (name, _), rec in pending.items():
                by_issuer.setdefault(name, []).append(rec)
            for name, records in by_issuer.items():
                try:
                    partitions = self.store.partitions(name)
                    mine = [
                        r
                        for r in records
                        if await self._mine(name, partition_of(r.serial, partitions))
                    ]
                    ordered = sorted(mine, key=lambda r: r.status is not Status.REVOKED)
                    await self.sign_and_store(self.issuers[name], ordered, "change")
                except BaseException as exc:  # the sweep will catch up
                    if not recoverable(exc):
                        raise
                    metrics.PRESIGN_ERRORS.labels("change").inc()
                    log.warning("re-signing changed certificates failed: %s", describe(exc))


async def presign_issuer(store: PresignStore, issuer: IssuerRuntime) -> int:
    """One full pass for one issuer (the demo's start-up)."""
    return await Presigner(store, [issuer]).sweep()
