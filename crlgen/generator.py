"""The CRL generator: shards in memory, republished on change and before nextUpdate.

At start it loads every revoked record of each issuer from the store into its shard
(the shard a certificate got at issuance), publishes every shard, and then:

- follows the store's change notifications: a revocation (or a lifted hold) updates its
  shard at once and the shard is republished after `debounce_seconds`, so a burst of
  revocations becomes one CRL;
- republishes every shard each `republish_hours`, well before nextUpdate (BR 7.2: at least
  every 7 days, with nextUpdate at most 10 days out);
- drops an entry only once the certificate has expired, its retention has ended, and it
  has appeared on a CRL issued after that (RFC 5280 section 3.3);
- reloads everything from the store when its subscription restarts, since notifications
  sent meanwhile are lost.

Every publication goes through crlgen.publish's checks; the shard list (CCADB's JSON array
of CRL URLs) is published next to the CRLs.
"""

import gc
import hashlib
import heapq
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import trio
from cryptography import x509

from responder.audit.trail import AuditTrail
from responder.changes import ChangeHub, FeedItem, Resync
from responder.config import IssuerConfig
from responder.failures import describe, recoverable
from responder.observability import metrics
from responder.policy import DEFAULT_CRL_RETENTION
from responder.signing import Signer
from responder.store import CertRecord, Status, Store, StoreError
from responder.store.leases import Leases

from .builder import CrlIssuer, Shard, build_crl
from .publish import (
    Checks,
    DirectoryOrigin,
    OffLoop,
    PublishRefused,
    S3Origin,
    crl_number,
    crl_number_of,
    crl_serials_of,
)

# Batches of changes the generator may fall behind by before it resyncs (changes.py)
CHANGE_BUFFER = 256

log = logging.getLogger("revocd.crl")


def shard_url(template: str, shard: int) -> str:
    return template.format(shard=shard)


def file_name(url: str) -> str:
    """The origin file behind a CRL URL: its last path segment."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if not name or name.startswith("."):
        raise ValueError(f"CRL URL {url!r} does not end in a file name")
    return name


@dataclass
class Publication:
    """One CRL published (for the ledger, the report and the CDN purge)."""

    issuer: str
    shard: int
    file: str
    number: int
    this_update: int
    published_ms: int
    listed: set[int]  # revoked serials on it for the first time
    origins: list[str]


@dataclass
class IssuerCrls:
    """Every CRL of one issuer."""

    config: IssuerConfig
    cert: x509.Certificate  # the issuer's: its name is the CRL's issuer, its key verifies
    signer: Signer
    origin: DirectoryOrigin
    s3: S3Origin | None = None
    shards: dict[int, Shard] = field(default_factory=dict)
    not_after: dict[int, int | None] = field(default_factory=dict)
    dropped: set[int] = field(default_factory=set)
    dirty: set[int] = field(default_factory=set)
    published_at: dict[int, int] = field(default_factory=dict)
    # Per shard: the CRL Number last published from here (read from the origin once)
    numbers: dict[int, int] = field(default_factory=dict)
    # Per shard: a heap of (notAfter, serial), so `prune` looks at what has expired
    # rather than at every entry (a million at each publication)
    expiry: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    wake: trio.Event = field(default_factory=trio.Event)
    audit: AuditTrail | None = None
    # Set by CrlGenerator when several processes may share the store: whether this one
    # holds the issuer's lease, and the store-wide CRL number fence (see publish).
    leases: Leases | None = None
    store: Store | None = None
    # Wall-clock time of thisUpdate and the CRL number; injected so tests can fix it.
    clock: Callable[[], float] = time.time
    # After each publication: its record for the propagation ledger and the report, and
    # the CDN purge of the shard (responder/propagation/crl.py). None: neither.
    on_published: "Callable[[Publication], Awaitable[None]] | None" = None
    # Per shard: revoked serials added since its last publication (the ledger's "first
    # listed on CRL" step is theirs at the next one)
    fresh: dict[int, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.config.crl is not None
        # Reached only off the event loop (publish.py: OffLoop). The directory comes
        # first: it is what this process's data plane serves, and what the checks and
        # CRL numbers are read from.
        self.origins = [OffLoop(self.origin, "directory")]
        if self.s3 is not None:
            self.origins.append(OffLoop(self.s3, "s3"))
        self.crl = self.config.crl
        self.issuer = CrlIssuer(self.cert, self.signer)
        self.count = max(1, self.config.crl_shards)
        retention = self.crl.retention_days
        self.retention = (
            retention * 86400
            if retention is not None
            else DEFAULT_CRL_RETENTION[self.config.policy]
        )

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def lease_name(self) -> str:
        return f"crl:{self.name}"

    def url(self, shard: int) -> str:
        return shard_url(self.crl.url, shard)

    def shard_of(self, record: CertRecord) -> int:
        return record.crl_shard % self.count

    async def load(self, store: Store) -> None:
        by_shard: dict[int, list[CertRecord]] = {n: [] for n in range(self.count)}
        self.not_after.clear()
        async for record in store.revoked_records(self.name):
            by_shard[self.shard_of(record)].append(record)
            self.not_after[record.serial] = record.not_after
        self.shards = {n: Shard.from_records(records) for n, records in by_shard.items()}
        self.expiry = {}
        for n, records in by_shard.items():
            heap = [(r.not_after, r.serial) for r in records if r.not_after is not None]
            heapq.heapify(heap)
            self.expiry[n] = heap
        self.dirty = set(range(self.count))
        self.numbers.clear()
        # Revocations of the last two days may not have been on a CRL yet (this
        # generator was away): their ledgers take the next publication if they lack one.
        recent = int(self.clock()) - 2 * 86400
        self.fresh = {
            n: {r.serial for r in records if r.updated_at >= recent}
            for n, records in by_shard.items()
        }
        # Entries on the published CRLs that the store no longer lists as revoked (a hold
        # lifted while this generator was away) may leave; anything else must stay.
        listed = set(self.not_after)
        gone: list[int] = []
        for shard in range(self.count):
            published = await self.origins[0].current(file_name(self.url(shard)))
            if published is not None:
                serials = await trio.to_thread.run_sync(crl_serials_of, published)
                gone += [s for s in serials if s not in listed]
        if gone:
            now_known = await store.get_records(self.name, gone)
            self.dropped |= {
                s for s in gone if s in now_known and now_known[s].status is Status.GOOD
            }
        # The shards, records' times and heaps just loaded live as long as the generator
        # (a million entries: several million objects). gc.freeze takes everything alive
        # now out of the cyclic collector's sight, so a full collection does not walk
        # them in the middle of a publication (a 50 ms stall of the loop at 1M entries).
        # None of them is in a reference cycle: when replaced they are freed as usual.
        gc.freeze()

    def apply(self, serial: int, record: CertRecord | None) -> None:
        """A status change: the revoked entry is added or replaced, a lifted hold removed."""
        if record is not None and record.status is Status.REVOKED:
            n = self.shard_of(record)
            self.shards[n].upsert(record)
            if record.not_after is not None and self.not_after.get(serial) != record.not_after:
                heapq.heappush(self.expiry.setdefault(n, []), (record.not_after, serial))
            self.not_after[serial] = record.not_after
            self.dropped.discard(serial)
            self.dirty.add(n)
            self.fresh.setdefault(n, set()).add(serial)
        else:
            n = self.shard_of(record) if record is not None else serial % self.count
            if self.shards[n].remove(serial):
                self.dropped.add(serial)
                self.not_after.pop(serial, None)
                self.dirty.add(n)
        self.wake.set()

    def prune(self, shard: int) -> None:
        """Drop entries past expiry + retention that a CRL issued after that has carried
        (RFC 5280 section 3.3: an entry stays until one CRL after expiry listed it)."""
        last = self.published_at.get(shard)
        if last is None:
            return
        heap = self.expiry.get(shard)
        if heap is None:  # shards set without load(): index them once
            heap = [
                (t, s)
                for s in self.shards[shard].serials
                if (t := self.not_after.get(s)) is not None
            ]
            heapq.heapify(heap)
            self.expiry[shard] = heap
        while heap and heap[0][0] + self.retention < last:
            not_after, serial = heapq.heappop(heap)
            if self.not_after.get(serial) != not_after:
                continue  # left the CRL already (a lifted hold), or a stale heap entry
            if self.shards[shard].remove(serial):
                self.not_after.pop(serial, None)
                self.dropped.add(serial)

    async def publish(self, shard: int) -> bool:
        if self.leases is not None and not await self.leases.hold(self.lease_name):
            return False  # another process publishes this issuer; the shard stays dirty
        self.prune(shard)
        url = self.url(shard)
        name = file_name(url)
        now = int(self.clock())
        previous_number = self.numbers.get(shard)
        if previous_number is None:  # first publication of this shard from here
            previous = await self.origins[0].current(name)
            previous_number = crl_number_of(previous) if previous is not None else None
        idp = url if self.count > 1 else None
        number = crl_number(now, previous_number)
        if self.store is not None:
            # Above anything any process published for this shard (another process's
            # origin is not ours to read; its numbers are in the store).
            try:
                number = await self.store.fence_crl_number(self.name, shard, number)
            except StoreError as exc:
                log.error("CRL %s for %s not published: %s", name, self.name, exc)
                metrics.CRL_PUBLISH.labels(self.name, "store_error").inc()
                return False
        # The CRL is built from the shard as it is now; a change that arrives while it is
        # built, checked and written marks the shard due again, so it is not lost.
        self.dirty.discard(shard)
        published = await self._build_and_write(shard, name, number, now, idp)
        if not published:
            self.dirty.add(shard)
        return published

    async def _build_and_write(
        self, shard: int, name: str, number: int, now: int, idp: str | None
    ) -> bool:
        der = await build_crl(
            self.issuer,
            self.shards[shard],
            number,
            now,
            now + self.crl.validity_hours * 3600 - 1,
            idp,
        )
        checks = Checks(may_drop=lambda serial: serial in self.dropped)
        key = self.cert.public_key()
        for origin in self.origins:
            try:
                await origin.publish(self.name, name, der, key, checks)  # type: ignore[arg-type]
            except PublishRefused as exc:  # counted and logged by the origin
                if self.audit is not None:
                    await self.audit.anomaly(
                        "crl_refused",
                        issuer=self.name,
                        shard=shard,
                        check=exc.check,
                        origin=origin.label,
                        reason=str(exc),
                    )
                return False
            except Exception as exc:  # disk full, storage unreachable: the next pass retries
                metrics.CRL_PUBLISH.labels(self.name, f"{origin.label}_error").inc()
                log.error("CRL %s for %s not written to %s: %s", name, self.name, origin.label, exc)
                return False
        self.published_at[shard] = now
        self.numbers[shard] = number
        if self.on_published is not None:
            fresh = self.fresh.pop(shard, set())
            listed = {s for s in fresh if s in self.shards[shard]}
            publication = Publication(
                self.name,
                shard,
                name,
                number,
                now,
                int(self.clock() * 1000),
                listed,
                [o.label for o in self.origins],
            )
            try:
                await self.on_published(publication)
            except Exception as exc:  # the CRL is out; its ledger notes are not essential
                self.fresh.setdefault(shard, set()).update(fresh)
                log.warning("CRL %s of %s: publication not recorded: %s", name, self.name, exc)
        metrics.CRL_LAST_PUBLISHED.labels(self.name, str(shard)).set(now)
        metrics.CRL_NEXT_UPDATE.labels(self.name, str(shard)).set(
            now + self.crl.validity_hours * 3600 - 1
        )
        metrics.CRL_REPUBLISH_INTERVAL.labels(self.name).set(self.crl.republish_hours * 3600)
        if self.audit is not None:
            await self.audit.record(
                "crl.published",
                issuer=self.name,
                shard=shard,
                file=name,
                crl_number=number,
                entries=len(self.shards[shard]),
                this_update=now,
                # hashlib lets go of the GIL for large inputs: tens of MB, off the loop
                sha256=await trio.to_thread.run_sync(lambda: hashlib.sha256(der).hexdigest()),
            )
        return True

    async def publish_index(self) -> None:
        """The JSON array of this issuer's CRL URLs (CCADB's format for sharded CRLs)."""
        urls = [self.url(n) for n in range(self.count)]
        data = (json.dumps(urls, indent=1) + "\n").encode()
        for origin in self.origins:
            try:
                await origin.put(f"{self.name}.crls.json", data)
            except Exception as exc:  # written again at the next start
                log.error("CRL list for %s not written to %s: %s", self.name, origin.label, exc)


class CrlGenerator:
    """Owned by `revocd serve` (or `revocd crl run`); runs in the caller's nursery."""

    def __init__(
        self,
        store: Store,
        issuers: list[IssuerCrls],
        audit: AuditTrail | None = None,
        leases: Leases | None = None,
    ) -> None:
        self.store = store
        self.issuers = {i.name: i for i in issuers}
        self.leases = leases
        for issuer in issuers:
            issuer.audit = audit
            if leases is not None:
                issuer.leases, issuer.store = leases, store

    async def run(
        self,
        feed: "trio.MemoryReceiveChannel[FeedItem] | None" = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Publish everything, then follow `feed` (the process's change feed; without
        one, `revocd crl run` and tests, the generator subscribes on its own)."""
        await self.publish_all(reload=True)
        async with trio.open_nursery() as nursery:
            if feed is None:
                hub = ChangeHub(self.store, self.issuers)
                feed = hub.subscribe("crl", records=True, buffer=CHANGE_BUFFER)
                nursery.start_soon(hub.run)
            nursery.start_soon(self._follow_changes, feed)
            for issuer in self.issuers.values():
                await issuer.publish_index()
                nursery.start_soon(self._debounced, issuer)
                nursery.start_soon(self._periodic, issuer)
            if self.leases is not None:
                nursery.start_soon(self._keep_leases, self.leases)
            task_status.started()

    async def _keep_leases(self, leases: Leases) -> None:
        """Extend the issuers' leases and take free ones a few times per lease period. An
        issuer taken over (its publisher died) is reloaded from the store and all its
        shards published at once: this process's own copy may be behind."""
        # Issuers published at start are not taken over: they are already ours.
        held = {i.name for i in self.issuers.values() if leases.trusted(i.lease_name)}
        try:
            while True:
                for issuer in self.issuers.values():
                    mine = await leases.hold(issuer.lease_name)
                    if mine and issuer.name not in held:
                        held.add(issuer.name)
                        try:
                            await issuer.load(self.store)
                            for shard in range(issuer.count):
                                await issuer.publish(shard)
                        except BaseException as exc:
                            if not recoverable(exc):
                                raise
                            held.discard(issuer.name)  # try again next round
                            log.warning(
                                "taking over the CRLs of %s: %s", issuer.name, describe(exc)
                            )
                    elif not mine:
                        held.discard(issuer.name)
                await trio.sleep(leases.ttl / 4)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await leases.release_all()

    async def publish_all(self, reload: bool = False) -> None:
        for issuer in self.issuers.values():
            if reload:
                await issuer.load(self.store)
            for shard in range(issuer.count):
                await issuer.publish(shard)

    async def _debounced(self, issuer: IssuerCrls) -> None:
        while True:
            await issuer.wake.wait()
            await trio.sleep(issuer.crl.debounce_seconds)
            issuer.wake = trio.Event()
            for shard in sorted(issuer.dirty):
                await issuer.publish(shard)

    async def _periodic(self, issuer: IssuerCrls) -> None:
        while True:
            await trio.sleep(issuer.crl.republish_hours * 3600)
            for shard in range(issuer.count):
                await issuer.publish(shard)

    async def _follow_changes(self, feed: "trio.MemoryReceiveChannel[FeedItem]") -> None:
        """Apply each batch of the change feed with the records it carries (fetched once
        for the process, changes.py). A Resync after the first subscription means
        notifications may have been lost: reload and republish everything."""
        async with feed:
            async for item in feed:
                if isinstance(item, Resync):
                    if not item.first:
                        await self._resync()
                    continue
                for changed in item:
                    change = changed.change
                    issuer = self.issuers.get(change.issuer)
                    if issuer is not None:
                        issuer.apply(change.serial, changed.record)

    async def _resync(self) -> None:
        try:
            await self.publish_all(reload=True)
        except BaseException as exc:  # the periodic pass republishes anyway
            if not recoverable(exc):
                raise
            metrics.CRL_PUBLISH.labels("*", "feed_lost").inc()
            log.warning("CRL resync after a lost change feed failed: %s", describe(exc))


def issuer_crls(
    config: IssuerConfig, cert: x509.Certificate, signer: Signer, crl_dir: Path
) -> IssuerCrls:
    crl = config.crl
    assert crl is not None
    s3 = None
    if crl.s3_bucket:
        s3 = S3Origin(crl.s3_bucket, crl.s3_prefix, crl.s3_endpoint_url, crl.s3_region)
    return IssuerCrls(config, cert, signer, DirectoryOrigin(crl_dir), s3)
