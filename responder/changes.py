"""One change-feed subscription per process, fanned out to every consumer.

The store announces each applied status change (store/store.py: subscribe_changes,
pub/sub: fast, but lossy while disconnected). Before, the answer cache, the
pre-signer and the CRL generator each subscribed, each with its own retry loop, and
two of them fetched the same records again. Now `ChangeHub` subscribes once,
batches what arrives, fetches the changed records once (when a consumer wants them)
and hands each consumer the same batch over its own trio memory channel.

What a consumer receives, in order:

- `Resync` after every (re)subscription: notifications may have been lost, so each
  consumer rebuilds what it derives from the store (the cache clears itself, the CRL
  generator reloads and republishes; the pre-signer's sweep covers it anyway).
- `Batch`es of `Changed` (a change and, if asked for, its record as read after it).

A consumer that falls behind (its channel full) is never waited for: that would hold
up the cache's invalidations behind a slow CRL build. Its notifications are dropped
instead, and it is sent a `Resync` as soon as its channel has room, which is what it
would have got had the subscription dropped. Nothing is silently lost.
"""

import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import trio

from .answers.arena import Arena
from .answers.cache import AnswerCache
from .domain.records import CertRecord
from .failures import describe, recoverable
from .observability import metrics
from .store.protocols import ChangeFeed, RecordReader
from .store.store import Change

log = logging.getLogger("revocd.changes")
# Notifications taken from the subscription per batch: one record fetch per issuer
# per batch, so a storm of 100,000 revocations costs 200 round trips, not 100,000.
BATCH = 500
# Seconds between resubscription attempts while the store is away.
RETRY = 0.5
# How often a consumer that fell behind is offered the Resync it is owed, so it gets
# it even when no further change arrives.
CATCH_UP = 0.05


@dataclass(frozen=True, slots=True)
class Resync:
    """Rebuild from the store: notifications may have been missed. `first` is the
    process's first subscription (nothing derived from the store is older than it)."""

    first: bool


@dataclass(frozen=True, slots=True)
class Changed:
    change: Change
    record: CertRecord | None  # None when the consumer did not ask for records


Batch = tuple[Changed, ...]
FeedItem = Resync | Batch


class HubStore(ChangeFeed, RecordReader, Protocol):
    """What the hub needs of the store."""


class _Consumer:
    __slots__ = ("behind", "name", "records", "send")

    def __init__(self, name: str, records: bool, send: trio.MemorySendChannel[FeedItem]) -> None:
        self.name = name
        self.records = records
        self.send = send
        self.behind = False  # notifications were dropped; a Resync is owed

    def catch_up(self) -> bool:
        """Send the owed Resync if there is room; False while still behind."""
        if not self.behind:
            return True
        try:
            self.send.send_nowait(Resync(first=False))
        except trio.WouldBlock:
            return False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self.behind = False
        metrics.CHANGE_FEED_RESYNCS.labels(self.name).inc()
        return True

    def offer(self, item: FeedItem) -> None:
        try:
            if not self.catch_up():
                return  # the batch is covered by the Resync still owed
            self.send.send_nowait(item)
        except trio.WouldBlock:
            if not self.behind:
                log.warning("change-feed consumer %s fell behind; it will resync", self.name)
            self.behind = True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the consumer has stopped; its owner is shutting down


class ChangeHub:
    """Owned by the process's nursery: `run` subscribes, consumers `subscribe` before it
    starts (consumers added later get the next Resync like everyone else)."""

    def __init__(
        self,
        store: HubStore,
        issuers: Collection[str],
        batch: int = BATCH,
        retry: float = RETRY,
    ) -> None:
        self.store = store
        # Changes of other issuers (another deployment on a shared store) are dropped
        # here, before anyone fetches their records.
        self.issuers = frozenset(issuers)
        self.batch = batch
        self.retry = retry
        self._consumers: list[_Consumer] = []
        self._first = True

    def subscribe(
        self, name: str, records: bool = False, buffer: int = 64
    ) -> trio.MemoryReceiveChannel[FeedItem]:
        """A channel of this process's changes for consumer `name`. `buffer` counts
        batches; `records` asks for each change's record (fetched once for everyone)."""
        send, receive = trio.open_memory_channel[FeedItem](buffer)
        self._consumers.append(_Consumer(name, records, send))
        return receive

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._catch_up)
            await nursery.start(self._follow)
            task_status.started()

    async def _catch_up(self) -> None:
        while True:
            await trio.sleep(CATCH_UP)
            for consumer in self._consumers:
                consumer.catch_up()

    async def _follow(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            try:
                async with self.store.subscribe_changes() as changes:
                    metrics.CHANGE_FEED_RESTARTS.inc()
                    self._broadcast(Resync(first=self._first))
                    self._first = False
                    if not started:
                        started = True
                        task_status.started()
                    await self._pump(changes)
            except BaseException as exc:
                if not recoverable(exc):
                    raise
                metrics.STORE_ERRORS.labels("subscribe").inc()
                log.warning("change subscription lost (%s); resubscribing", describe(exc))
            if not started:
                # The store is not there yet: let the process start anyway; every
                # consumer gets its Resync once the subscription is up.
                started = True
                task_status.started()
            await trio.sleep(self.retry)

    def _broadcast(self, item: FeedItem) -> None:
        for consumer in self._consumers:
            consumer.offer(item)
            if isinstance(item, Resync):
                metrics.CHANGE_FEED_RESYNCS.labels(consumer.name).inc()

    async def _pump(self, changes: AsyncIterator[Change]) -> None:
        """Move notifications into batches: whatever has arrived, up to `batch`."""
        send, receive = trio.open_memory_channel[Change](self.batch * 20)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, changes, send)
            async with receive:
                async for first in receive:
                    pending = [first]
                    while len(pending) < self.batch:
                        try:
                            pending.append(receive.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    ours = [c for c in pending if c.issuer in self.issuers]
                    if ours:
                        await self._deliver(ours)
            # The subscription ended (store restart): the caller resubscribes.
            nursery.cancel_scope.cancel()

    async def _deliver(self, pending: Sequence[Change]) -> None:
        plain = tuple(Changed(change, None) for change in pending)
        wanting = [c for c in self._consumers if c.records]
        with_records = plain
        if wanting:
            # A failed read ends the subscription (raised to `run`): every consumer then
            # gets a Resync, so a batch without its records is never half-delivered.
            records = await self._records(pending)
            with_records = tuple(
                Changed(change, records.get((change.issuer, change.serial))) for change in pending
            )
        for consumer in self._consumers:
            consumer.offer(with_records if consumer.records else plain)

    async def _records(self, pending: Sequence[Change]) -> dict[tuple[str, int], CertRecord]:
        by_issuer: dict[str, list[int]] = {}
        for change in pending:
            by_issuer.setdefault(change.issuer, []).append(change.serial)
        out: dict[tuple[str, int], CertRecord] = {}
        for issuer, serials in by_issuer.items():
            found = await self.store.get_records(issuer, serials)
            for serial, record in found.items():
                out[(issuer, serial)] = record
        return out


async def _drain(changes: AsyncIterator[Change], send: trio.MemorySendChannel[Change]) -> None:
    async with send:
        async for change in changes:
            await send.send(change)


async def invalidate_cache(
    feed: trio.MemoryReceiveChannel[FeedItem],
    cache: AnswerCache,
    clock: Callable[[], float] = time.time,
) -> None:
    """The answer cache's consumer: drop what changed; a Resync clears everything,
    because an invalidation may have been missed."""
    async with feed:
        async for item in feed:
            if isinstance(item, Resync):
                cache.clear()
                continue
            now = clock()
            for changed in item:
                change = changed.change
                cache.invalidate(change.issuer, change.serial)
                if change.at_ms:
                    metrics.PROPAGATION.observe(max(0.0, now - change.at_ms / 1000))


async def own_arena(
    feed: trio.MemoryReceiveChannel[FeedItem],
    arena: Arena,
    beat_every: float = 1.0,
    clock: Callable[[], float] = time.time,
) -> None:
    """The host's answer arena's owner (revocd serve's main process): every change
    kills the serial's answers in it, a Resync (a subscription restarted, so a change
    may have been missed) clears it, and a heartbeat tells the readers the owner is
    there. Readers stop serving from an arena whose heartbeat stops (arena.py)."""

    async def beat() -> None:
        while True:
            arena.beat(clock())
            used, writes = arena.stats()
            metrics.ARENA_BYTES.set(used)
            metrics.ARENA_WRITES.set(writes)
            await trio.sleep(beat_every)

    async with trio.open_nursery() as nursery, feed:
        nursery.start_soon(beat)
        async for item in feed:
            if isinstance(item, Resync):
                arena.clear()
                continue
            for changed in item:
                arena.invalidate(changed.change.serial)
        nursery.cancel_scope.cancel()
