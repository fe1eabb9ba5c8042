"""The purger: tells every configured CDN target what changed, from durable positions
in the store, so a crash, a restart or a CDN that is down loses no purge.

Where purges come from:

- Certificate changes: each partition's change stream (`rv:{issuer:p}:feed`), which
  the apply script writes atomically with the change itself. Each target keeps its
  position in each stream in the store (`rv:{issuer:p}:pc:<target>`), and moves it
  only after the CDN accepted the purges for everything up to it. So a revocation
  acknowledged to a CA is in the stream, and stays due at every target until that
  target has taken its purge: whatever is killed when, the next holder of the lease
  starts from the stored position and purges again (purges are idempotent).
- CRL publications and AIA changes: the purge queue stream (`rv:purges`), with a
  position per target the same way.

What is purged: the serial's tag (every GET spelling of the question is filed under
it) for each revocation, lifted hold and re-revocation. Not issuances: a new serial
has no cached answer worth the rate limit (revocd answers `unknown` for it until the
`issued` event, with the usual max-age; docs/cdn.md says so). More than
`cdn.issuer_purge_threshold` serials of one issuer in one pass, a stream trimmed past
a target's position, or a target's first start: the issuer's tag instead, once.

Timing: a change is purged `cdn.purge_delay_ms` after its acknowledgement, so the
origin's own caches (invalidated from the same change, by pub/sub) are right before
the CDN asks again. Wake-ups come from this process's change feed; every 30 seconds
every partition is looked at anyway (a change another process applied, a lost
notification).

One process purges for each target (a lease per target); targets are independent, so
one CDN being down delays only its own purges. Failures back off exponentially up to
`cdn.retry_max_seconds`; a 429 waits for its Retry-After. Requests stay within each
provider's documented limits (providers.py), by token buckets.
"""

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio
import urllib3

from ..changes import FeedItem
from ..config import Config, ConfigError
from ..config.model import PurgeTargetConfig
from ..domain.records import Status
from ..observability import metrics
from ..propagation.ledger import Ledger
from ..store import Store
from ..store import keys as store_keys
from ..store.errors import StoreError
from ..store.leases import Leases
from . import providers
from .tags import issuer_tag, serial_tag

log = logging.getLogger("revocd.cdn")

# Feed entries read per partition per request, and queue entries per pass
PAGE = 5000
FULL_SCAN = 30.0  # seconds between looks at every partition
IDLE_WAKE = 1.0  # seconds between wake-ups with nothing notified
RETRY_FIRST = 1.0


def _sid(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


class PurgeFailed(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


Sender = Callable[[providers.PurgeRequest, float], tuple[int, bytes, dict[str, str]]]


def urllib3_sender() -> Sender:
    """Send one request (blocking; called in a worker thread): status, body, headers."""
    pool = urllib3.PoolManager(retries=False)

    def send(req: providers.PurgeRequest, timeout: float) -> tuple[int, bytes, dict[str, str]]:
        reply = pool.request(
            req.method,
            req.url,
            body=req.body or None,
            headers=req.headers,
            timeout=urllib3.Timeout(total=timeout),
            redirect=False,
        )
        return reply.status, reply.data[:65536], dict(reply.headers)

    return send


@dataclass
class _Target:
    config: PurgeTargetConfig
    secret: str = ""
    credentials: providers.EdgeGridCredentials | None = None
    cursors: dict[tuple[str, int], str] = field(default_factory=dict)
    queue_cursor: str | None = None
    dirty: set[tuple[str, int]] = field(default_factory=set)
    wake: trio.Event = field(default_factory=trio.Event)
    last_full: float = -1e9

    def __post_init__(self) -> None:
        limits = providers.limits_of(self.config)
        self.limits = limits
        self.requests = providers.TokenBucket(limits.requests_per_minute, limits.request_burst)
        self.tags = providers.TokenBucket(limits.tags_per_minute, limits.tag_burst)

    @property
    def name(self) -> str:
        return self.config.name


@dataclass
class PassResult:
    """What one pass sent: tags, and the revoked serials whose purge it carried."""

    tags: list[str] = field(default_factory=list)
    revoked: dict[str, dict[int, int]] = field(default_factory=dict)  # issuer -> serial -> ack
    oldest_ms: int | None = None


def load_secrets(target: PurgeTargetConfig) -> tuple[str, providers.EdgeGridCredentials | None]:
    """The target's API token or EdgeGrid credentials, read at start so that a missing
    one stops revocd with its key named, not the first purge."""
    import os

    where = f"cdn.purge {target.name}"
    secret = os.environ.get(target.token_env, "") if target.token_env else ""
    if target.token_env and not secret:
        raise ConfigError(f"{where}: token_env: environment variable {target.token_env} unset")
    creds = None
    if target.credentials_file is not None:
        try:
            text = Path(target.credentials_file).read_text()
            creds = providers.EdgeGridCredentials.from_edgerc(text)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return secret, creds


class Purger:
    def __init__(
        self,
        store: Store,
        config: Config,
        sender: Sender | None = None,
        clock: Callable[[], float] = time.time,
        leases: Leases | None = None,
    ) -> None:
        self.store = store
        self.cdn = config.cdn
        self.issuers = {name: store.partitions(name) for name in config.issuers}
        # the purge steps, measured against propagation.purged_target_seconds
        self.ledger = Ledger(store, config.propagation) if config.propagation.enabled else None
        self.sender = sender or urllib3_sender()
        self.clock = clock
        self.leases = leases or Leases(store, config.store.lease_seconds)
        self.targets: list[_Target] = []
        for t in self.cdn.targets:
            secret, creds = load_secrets(t)
            self.targets.append(_Target(t, secret, creds))

    async def run(self, feed: "trio.MemoryReceiveChannel[FeedItem] | None" = None) -> None:
        try:
            async with trio.open_nursery() as nursery:
                for target in self.targets:
                    nursery.start_soon(self._target_loop, target)
                if feed is not None:
                    nursery.start_soon(self._follow, feed)
        finally:
            # a clean stop hands the targets over at once, not after the lease's TTL
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await self.leases.release_all()

    async def _follow(self, feed: "trio.MemoryReceiveChannel[FeedItem]") -> None:
        """Mark the partitions this process saw change; a Resync looks at all."""
        async with feed:
            async for item in feed:
                for t in self.targets:
                    if isinstance(item, tuple):
                        for changed in item:
                            c = changed.change
                            n = self.issuers.get(c.issuer)
                            if n is not None:
                                t.dirty.add((c.issuer, store_keys.partition_of(c.serial, n)))
                    else:
                        t.last_full = -1e9
                    t.wake.set()

    async def _target_loop(self, t: _Target) -> None:
        backoff = RETRY_FIRST
        delay = self.cdn.purge_delay_ms / 1000
        while True:
            with trio.move_on_after(IDLE_WAKE):
                await t.wake.wait()
            t.wake = trio.Event()
            if not await self.leases.hold(f"cdn-purge:{t.name}"):
                continue
            if delay:
                # changes just notified become due after the delay
                await trio.sleep(delay)
            try:
                more = await self.purge_once(t)
                backoff = RETRY_FIRST
                if more:
                    t.wake.set()
            except (PurgeFailed, StoreError, OSError) as exc:
                wait = backoff
                if isinstance(exc, PurgeFailed) and exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
                log.warning("CDN purge to %s failed (%s); retrying in %.1f s", t.name, exc, wait)
                await trio.sleep(wait * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.cdn.retry_max_seconds)
                t.wake.set()

    async def purge_once(self, t: _Target) -> bool:
        """One pass for target `t`: read what is due, send it, move the positions.
        True if more is waiting (a full page, or changes not yet past the delay)."""
        now = self.clock()
        full = now - t.last_full >= FULL_SCAN
        if full:
            parts = {(i, p) for i, n in self.issuers.items() for p in range(n)}
        else:
            parts = set(t.dirty)
        t.dirty -= parts
        try:
            more = await self._pass(t, parts, now)
        except BaseException:
            # nothing was moved: the same partitions are looked at again next time
            t.dirty |= parts
            raise
        if full:
            t.last_full = now
        return more

    async def _pass(self, t: _Target, parts: set[tuple[str, int]], now: float) -> bool:
        due_ms = int((now - self.cdn.purge_delay_ms / 1000) * 1000)
        result = PassResult()
        moves: dict[str, str] = {}
        issuer_wide: dict[str, str] = {}
        serials: dict[str, set[int]] = {}
        more = False
        for issuer, p in sorted(parts):
            cursor = await self._cursor(t, issuer, p)
            if cursor is None:
                # never purged for this partition: nothing tells what a CDN may hold
                last = await self.store.feed_last_id(issuer, p)
                issuer_wide.setdefault(issuer, "first_start")
                moves[store_keys.purge_cursor(issuer, p, t.name)] = last
                continue
            entries, first = await self.store.feed_page(issuer, p, cursor, PAGE)
            if cursor != "0" and first is not None and _sid(first) > _sid(cursor):
                issuer_wide.setdefault(issuer, "stream_trimmed")
            taken = None
            for sid, change in entries:
                if _sid(sid)[0] > due_ms:
                    more = True
                    t.dirty.add((issuer, p))
                    break
                taken = sid
                if change.status is Status.REVOKED or change.version > 1:
                    serials.setdefault(issuer, set()).add(change.serial)
                    if change.status is Status.REVOKED:
                        result.revoked.setdefault(issuer, {})[change.serial] = _sid(sid)[0]
                    at = _sid(sid)[0]
                    if result.oldest_ms is None or at < result.oldest_ms:
                        result.oldest_ms = at
            if len(entries) >= PAGE:
                more = True
                t.dirty.add((issuer, p))
            if taken is not None:
                moves[store_keys.purge_cursor(issuer, p, t.name)] = taken
        for issuer, found in serials.items():
            if len(found) > self.cdn.issuer_purge_threshold:
                issuer_wide.setdefault(issuer, "burst")
        tags: list[str] = []
        for issuer, why in sorted(issuer_wide.items()):
            metrics.CDN_PURGE_ISSUER_WIDE.labels(t.name, why).inc()
            log.info("CDN %s: purging everything of issuer %s (%s)", t.name, issuer, why)
            tags.append(issuer_tag(issuer))
        for issuer, found in sorted(serials.items()):
            if issuer not in issuer_wide:
                tags.extend(serial_tag(issuer, s) for s in sorted(found))
        # the queue: CRL publications, AIA changes
        queue_cursor = t.queue_cursor
        if queue_cursor is None:
            stored = await self.store.get_strings([store_keys.purge_queue_cursor(t.name)])
            queue_cursor = stored[store_keys.purge_queue_cursor(t.name)] or "0"
        queued, _ = await self.store.purge_queue_page(queue_cursor, PAGE)
        new_queue_cursor = queue_cursor
        for sid, qtags, _why in queued:
            tags.extend(x for x in qtags if x not in tags)
            new_queue_cursor = sid
        if len(queued) >= PAGE:
            more = True
        lag = (now * 1000 - result.oldest_ms) / 1000 if result.oldest_ms else 0.0
        metrics.CDN_PURGE_LAG.labels(t.name).set(max(0.0, lag))
        if tags:
            sent_ms = int(self.clock() * 1000)
            await self._send(t, tags)
            acked_ms = int(self.clock() * 1000)
            await self._ledger(t, result, sent_ms, acked_ms)
        for key, value in moves.items():
            await self.store.set_string(key, value)
            issuer, p = _parse_cursor_key(key)
            t.cursors[(issuer, p)] = value
        if new_queue_cursor != queue_cursor:
            await self.store.set_string(store_keys.purge_queue_cursor(t.name), new_queue_cursor)
        t.queue_cursor = new_queue_cursor
        metrics.CDN_PURGE_LAG.labels(t.name).set(0.0 if not more else max(0.0, lag))
        return more

    async def _cursor(self, t: _Target, issuer: str, p: int) -> str | None:
        found = t.cursors.get((issuer, p))
        if found is not None:
            return found
        key = store_keys.purge_cursor(issuer, p, t.name)
        stored = (await self.store.get_strings([key]))[key]
        if stored is not None:
            t.cursors[(issuer, p)] = stored
        return stored

    async def _send(self, t: _Target, tags: Sequence[str]) -> None:
        for batch in providers.batches(t.config, tags):
            for bucket, n in ((t.requests, 1), (t.tags, len(batch))):
                wait = bucket.take(n)
                while wait > 0:
                    metrics.CDN_PURGES.labels(t.name, "rate_limited").inc()
                    await trio.sleep(wait)
                    wait = bucket.take(n)
            request = providers.build(t.config, batch, t.secret, t.credentials)
            try:
                status, body, headers = await trio.to_thread.run_sync(
                    self.sender, request, t.config.timeout_seconds, abandon_on_cancel=True
                )
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                metrics.CDN_PURGES.labels(t.name, "error").inc()
                raise PurgeFailed(f"{request.method} {request.url}: {exc}") from exc
            if status == 429:
                metrics.CDN_PURGES.labels(t.name, "rate_limited").inc()
                raise PurgeFailed("429 Too Many Requests", _retry_after(headers))
            if not providers.accepted(t.config.kind, status, body):
                metrics.CDN_PURGES.labels(t.name, "refused").inc()
                raise PurgeFailed(f"{request.method} {request.url}: HTTP {status} {_brief(body)}")
            metrics.CDN_PURGES.labels(t.name, "ok").inc()
            metrics.CDN_PURGE_TAGS.labels(t.name).inc(len(batch))

    async def _ledger(self, t: _Target, result: PassResult, sent_ms: int, acked_ms: int) -> None:
        if self.ledger is None:
            return
        for issuer, revoked in result.revoked.items():
            await self.ledger.mark(issuer, f"purge:{t.name}:req", dict.fromkeys(revoked, sent_ms))
            await self.ledger.mark(issuer, f"purge:{t.name}:ack", dict.fromkeys(revoked, acked_ms))


def _parse_cursor_key(key: str) -> tuple[str, int]:
    # rv:{issuer:p}:pc:<target>
    inner = key[key.index("{") + 1 : key.index("}")]
    issuer, _, p = inner.rpartition(":")
    return issuer, int(p)


def _retry_after(headers: dict[str, str]) -> float | None:
    for k, v in headers.items():
        if k.lower() == "retry-after":
            try:
                return max(0.0, min(3600.0, float(v)))
            except ValueError:
                return None
    return None


def _brief(body: bytes) -> str:
    try:
        text = json.dumps(json.loads(body))
    except ValueError:
        text = body.decode("utf-8", "replace")
    return text[:200]


async def queue_purge(store: Store, tags: Sequence[str], why: str) -> None:
    """Queue a purge of `tags` for every CDN target (CRL publications, AIA changes)."""
    await store.queue_purge(tags, why)
