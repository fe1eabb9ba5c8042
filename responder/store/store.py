"""The one store abstraction: certificate status, pre-signed answers and the change feed.

Speaks the Redis protocol through coredis (trio-native through anyio) to a
standalone server, a Sentinel-managed primary or a Cluster. Writes are Lua
scripts confined to one partition's hash tag; acknowledgements wait for the
AOF fsync (WAITAOF) and, when configured, for replicas.
"""

import json
import logging
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import anyio
import coredis
import coredis.exceptions
import trio
from coredis.retry import ConstantRetryPolicy
from coredis.typing import Node

from ..config import ConfigError, IssuerConfig, StoreConfig
from ..domain.events import Event, Outcome
from ..domain.facts import CertFacts
from ..domain.records import CertRecord, Status
from . import keys
from .errors import StoreError, maps_driver_errors
from .records import decode_record, event_args
from .scripts import (
    APPLY_EVENTS,
    DROP_LEASE,
    FENCE_CRL_NUMBER,
    HEARTBEAT,
    LEDGER_MARK,
    LOOKUP,
    MIGRATE_CHUNK,
    PUT_ANSWERS,
    PUT_INVENTORY,
    TAKE_LEASE,
)

log = logging.getLogger("revocd.store")

T = TypeVar("T")

ANSWER_HEADER = struct.Struct(">qq")  # this_update, next_update
READ_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class PreSigned:
    this_update: int
    next_update: int
    der: bytes


@dataclass(frozen=True, slots=True)
class Change:
    issuer: str
    serial: int
    status: Status
    version: int
    at_ms: int | None = None  # store clock when the change was made (notifications only)


def _nodes(netloc: str) -> list[tuple[str, int]]:
    out = []
    for part in netloc.split(","):
        host, _, port = part.rpartition(":")
        out.append((host.strip("[]") or "127.0.0.1", int(port or 6379)))
    return out


# Every wait on the store is bounded (issue: store faults). A connection that gets no
# answer within its stream timeout is dropped, so a frozen server costs each caller one
# timeout, not forever, and the next command opens a fresh connection once it is back.
CONNECT_TIMEOUT = 2.0
POOL_TIMEOUT = 2.0  # waiting for a free connection of the pool
# Each cluster node gets a pool of its own this large: a shared pool split over the
# nodes left a promoted replica with no connection to be had (failover wedged revocd).
CLUSTER_CONNECTIONS_PER_NODE = 128


def _timeouts(settings: StoreConfig) -> dict[str, Any]:
    return {
        "connect_timeout": CONNECT_TIMEOUT,
        # WAITAOF and WAIT block for up to the durability timeout before they answer.
        "stream_timeout": settings.durability_timeout_ms / 1000 + 2.0,
        "pool_timeout": POOL_TIMEOUT,
    }


# Reconnect at once after a restart or failover; a timeout is not retried, so a frozen
# store answers within one stream timeout.
_RETRY = ConstantRetryPolicy((ConnectionError,), retries=2, delay=0.05)


@asynccontextmanager
async def open_client(url: str, settings: StoreConfig) -> AsyncIterator[tuple[Any, str]]:
    """A connected coredis client for a store URL, and the kind: standalone, cluster or
    sentinel. The client (and for Sentinel, the Sentinel object it comes from) is
    entered here and closed on exit.

    redis://[user:password@]host:port/db, rediss:// for TLS, unix:///path.sock;
    redis+cluster://[user:password@]host:port,host:port;
    redis+sentinel://[user:password@]host:port,host:port/service_name[/db].
    valkey* schemes are accepted as synonyms.
    """
    scheme_in = url.split("://", 1)[0]
    scheme = scheme_in.replace("valkey", "redis")
    timeouts = _timeouts(settings)
    if scheme in ("redis", "rediss", "unix"):
        normal = scheme + url[len(scheme_in) :]
        client = coredis.Redis.from_url(
            normal, decode_responses=False, retry_policy=_RETRY, **timeouts
        )
        async with client:
            yield client, "standalone"
        return
    parts = urlsplit(url)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    netloc = parts.netloc.rsplit("@", 1)[-1]
    tls = scheme.endswith("s")
    if scheme in ("redis+cluster", "rediss+cluster"):
        nodes = [Node(host=h, port=p) for h, p in _nodes(netloc)]
        cluster = coredis.RedisCluster(
            startup_nodes=nodes,
            username=username,
            password=password,
            ssl=tls,
            decode_responses=False,
            max_connections=CLUSTER_CONNECTIONS_PER_NODE,
            max_connections_per_node=True,
            **timeouts,
        )
        async with cluster:
            yield cluster, "cluster"
        return
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ConfigError("store.url: a sentinel URL needs the service name as its path")
        db = int(path[1]) if len(path) > 1 else 0
        # These go to each connection as they are: connection parameters only (the
        # pool's timeout is not one).
        conn = {k: timeouts[k] for k in ("connect_timeout", "stream_timeout")}
        if tls:
            conn["ssl_context"] = ssl.create_default_context()
        sentinel = coredis.Sentinel(
            _nodes(netloc),
            sentinel_kwargs={"password": password, **conn} if password else conn,
            username=username,
            password=password,
            decode_responses=False,
            db=db,
            retry_policy=_RETRY,
            **conn,
        )
        # At 3079c4f only the primary's client was entered, and the Sentinel's own pool
        # never initialised ("Connection pool is not initialized"): both are now.
        async with sentinel:
            primary = sentinel.primary_for(path[0])
            async with primary:
                yield primary, "sentinel"
        return
    raise ConfigError(f"store.url: unsupported scheme {scheme_in!r}")


@maps_driver_errors
class Store:
    """Status store for revocd over the Redis protocol. Every public coroutine raises
    only StoreError (errors.py) for what the store or the network did."""

    def __init__(
        self,
        client: Any,
        kind: str,
        settings: StoreConfig,
        url: str = "",
        writer: Any = None,
    ) -> None:
        self.url = url
        self.client = client
        # Event writes wait for WAITAOF (and replicas) on connections of their own, so a
        # shard that cannot meet store.replicas delays pushes, never OCSP reads.
        self.writer = writer if writer is not None else client
        self.kind = kind
        self.settings = settings
        self._apply = self.writer.register_script(APPLY_EVENTS)
        self._put_answers = client.register_script(PUT_ANSWERS)
        self._migrate = client.register_script(MIGRATE_CHUNK)
        self._lookup = client.register_script(LOOKUP)
        self._take_lease = client.register_script(TAKE_LEASE)
        self._drop_lease = client.register_script(DROP_LEASE)
        self._heartbeat = client.register_script(HEARTBEAT)
        self._fence_crl = client.register_script(FENCE_CRL_NUMBER)
        self._ledger_mark = client.register_script(LEDGER_MARK)
        self._put_inventory = self.writer.register_script(PUT_INVENTORY)
        # Seconds a revocation's propagation ledger is kept (propagation.retention_days;
        # 0: no ledger). Set by the wiring; the apply script starts each ledger.
        self.ledger_seconds = 0
        self._partitions: dict[str, int] = {}
        self._wait_local = 1

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, settings: StoreConfig | None = None) -> AsyncIterator["Store"]:
        settings = settings or StoreConfig(url=url)
        try:
            async with (
                open_client(url, settings) as (client, kind),
                open_client(url, settings) as (writer, _),
            ):
                store = cls(client, kind, settings, url, writer)
                await store._check_durability()
                yield store
        except BaseExceptionGroup as group:
            # coredis runs its connections in a task group, which wraps whatever the
            # body raises; a lone error is re-raised as itself for the caller.
            raise _single(group) from None

    async def _check_durability(self) -> None:
        """Refuse a store that cannot make an acknowledged event durable."""
        nodes = list(self.client.primaries) if self.kind == "cluster" else [self.client]
        for node in nodes:
            if self.kind == "cluster":
                async with node:
                    await self._check_node(node)
            else:
                await self._check_node(node)

    async def _check_node(self, node: Any) -> None:
        try:
            conf = await node.config_get(["appendonly", "appendfsync"])
        except coredis.exceptions.ResponseError:
            log.warning("store refuses CONFIG GET; relying on WAITAOF to confirm durability")
            return
        values = {_s(k): _s(v) for k, v in conf.items()}
        if values.get("appendonly") != "yes":
            if self.settings.replicas == 0:
                raise StoreError(
                    "store.url: the store has appendonly=no, so acknowledged events would not "
                    "be on disk; enable appendonly or set store.replicas"
                )
            self._wait_local = 0
            log.warning(
                "store has appendonly=no; durability rests on %d replica(s)", self.settings.replicas
            )
        elif values.get("appendfsync") != "always":
            log.info(
                "store appendfsync=%s: each acknowledgement waits for WAITAOF",
                values.get("appendfsync"),
            )

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (coredis.exceptions.RedisError, OSError):
            return False

    # -- issuers -------------------------------------------------------------------

    async def register_issuers(self, issuers: Iterable[IssuerConfig]) -> None:
        """Record each issuer's partition count (it can never change afterwards), and
        bring an issuer registered by an older revocd to the current key layout."""
        for issuer in issuers:
            raw = await self.client.hget(keys.ISSUERS, issuer.name)
            if raw is not None:
                known = json.loads(raw)
                if known["partitions"] != issuer.partitions:
                    raise ConfigError(
                        f"issuers.{issuer.name}.partitions: the store holds this issuer with "
                        f"{known['partitions']} partitions; it cannot change to {issuer.partitions}"
                    )
                self._partitions[issuer.name] = issuer.partitions
                if known.get("layout", 1) < keys.LAYOUT:
                    await self._migrate_issuer(issuer.name, known)
            else:
                record = {
                    "partitions": issuer.partitions,
                    "policy": issuer.policy.value,
                    "registered_at": int(time.time()),
                    "layout": keys.LAYOUT,
                }
                await self.client.hsetnx(keys.ISSUERS, issuer.name, json.dumps(record))
                self._partitions[issuer.name] = issuer.partitions

    async def _migrate_issuer(self, issuer: str, known: dict[str, Any]) -> None:
        """Layout 1 to 2: answers out of the partition hashes into keys of their own, and
        every record into the due index. Idempotent, so a process killed half-way (or
        two processes starting together) simply do it again; answers stay served."""
        started = time.monotonic()
        moved = 0
        for p in range(self.partitions(issuer)):
            async for chunk in self._fields(keys.certs(issuer, p)):
                serials = [int(f, 16) for f in chunk]
                await self._migrate(
                    keys=[
                        keys.legacy_answers(issuer, p),
                        keys.due(issuer, p),
                        *(keys.answer(issuer, p, s) for s in serials),
                    ],
                    args=chunk,
                )
                moved += len(chunk)
            await self.client.unlink([keys.legacy_answers(issuer, p)])
        known["layout"] = keys.LAYOUT
        await self.client.hset(keys.ISSUERS, {issuer: json.dumps(known)})
        log.warning(
            "issuer %s: store layout upgraded to %d (%d records indexed in %.1f s); "
            "every answer is re-signed by the next pre-sign sweep",
            issuer,
            keys.LAYOUT,
            moved,
            time.monotonic() - started,
        )

    async def _fields(self, key: str, count: int = 1000) -> AsyncIterator[list[str]]:
        """A hash's field names in chunks (HSCAN: no long server stalls)."""
        cursor = None
        while cursor != 0:
            cursor, found = await self.client.hscan(key, cursor=cursor or 0, count=count)
            if found:
                yield [_s(f) for f in found]

    def _durable(self) -> Any:
        """Writes inside wait for the AOF (and store.replicas replicas) before returning:
        what an acknowledgement needs."""
        return self.writer.ensure_persistence(
            self._wait_local, self.settings.replicas, self.settings.durability_timeout_ms
        )

    @property
    def durability_timeout(self) -> float:
        return self.settings.durability_timeout_ms / 1000

    def partitions(self, issuer: str) -> int:
        try:
            return self._partitions[issuer]
        except KeyError:
            raise StoreError(f"issuer {issuer!r} is not registered with the store") from None

    # -- events ----------------------------------------------------------------------

    async def apply_events(
        self,
        issuer: str,
        partition: int,
        events: Sequence[Event],
        crl_shards: int,
        now: int | None = None,
    ) -> list[tuple[Outcome, str]]:
        """Apply validated events of one partition, in order, durably; an outcome and a
        message per event (responder/domain/transitions.py says which)."""
        now = int(time.time()) if now is None else now
        args: list[str | int] = [issuer, now, self.settings.feed_maxlen, len(events)]
        for event in events:
            args.extend(event_args(event, crl_shards))
        script_keys = [
            *keys.partition_keys(issuer, partition),
            *(keys.answer(issuer, partition, e.serial) for e in events),
        ]
        if self.ledger_seconds:
            script_keys.append(keys.ledger_index(issuer, partition))
            script_keys.extend(keys.ledger(issuer, partition, e.serial) for e in events)
            args.append(self.ledger_seconds)
        with self._durable():
            raw = await self._apply(keys=script_keys, args=args)
        flat = [_s(x) for x in raw]
        return [(Outcome(c), m) for c, m in zip(flat[0::2], flat[1::2], strict=True)]

    async def _per_partition(
        self,
        issuer: str,
        items: Sequence[T],
        serial_of: Callable[[T], int],
        run: Callable[[int, list[T]], Awaitable[None]],
    ) -> None:
        """`run(partition, its items)` for each partition the items fall in, concurrently:
        one store call per partition (one cluster slot), all in flight together."""
        n = self.partitions(issuer)
        groups: dict[int, list[T]] = {}
        for item in items:
            groups.setdefault(keys.partition_of(serial_of(item), n), []).append(item)
        async with trio.open_nursery() as nursery:
            for p, group in groups.items():
                nursery.start_soon(run, p, group)

    # -- reads -----------------------------------------------------------------------

    async def get_record(self, issuer: str, serial: int) -> CertRecord | None:
        p = keys.partition_of(serial, self.partitions(issuer))
        raw = await self.client.hget(keys.certs(issuer, p), keys.serial_field(serial))
        return None if raw is None else decode_record(serial, raw)

    async def get_records(self, issuer: str, serials: Sequence[int]) -> dict[int, CertRecord]:
        """Many records in one round trip per partition, partitions fetched concurrently."""
        return await self._fields_of(issuer, serials, keys.certs, decode_record)

    async def _fields_of(
        self,
        issuer: str,
        serials: Sequence[int],
        hash_key: Callable[[str, int], str],
        decode: Callable[[int, Any], T],
    ) -> dict[int, T]:
        """Each serial's field of a per-partition hash (records, facts), decoded: one
        HMGET per partition, partitions fetched concurrently; absent serials left out."""
        out: dict[int, T] = {}

        async def fetch(p: int, group: list[int]) -> None:
            raws = await self.client.hmget(
                hash_key(issuer, p), [keys.serial_field(s) for s in group]
            )
            for serial, raw in zip(group, raws, strict=True):
                if raw is not None:
                    out[serial] = decode(serial, raw)

        await self._per_partition(issuer, serials, lambda s: s, fetch)
        return out

    async def count_records(self, issuer: str) -> int:
        total = 0
        for p in range(self.partitions(issuer)):
            total += await self.client.hlen(keys.certs(issuer, p))
        return total

    async def records(self, issuer: str) -> AsyncIterator[CertRecord]:
        """Every record of an issuer, partition by partition (HSCAN: no long server stalls)."""
        for p in range(self.partitions(issuer)):
            async for field_name, raw in self.client.hscan_iter(keys.certs(issuer, p), count=1000):
                yield decode_record(int(_s(field_name), 16), raw)

    async def revoked_records(self, issuer: str) -> AsyncIterator[CertRecord]:
        """Every revoked record of an issuer, partition by partition (for CRLs)."""
        for p in range(self.partitions(issuer)):
            start = 0
            while True:
                members = await self.client.zrange(
                    keys.revoked(issuer, p), start, start + READ_CHUNK - 1
                )
                if not members:
                    break
                raws = await self.client.hmget(keys.certs(issuer, p), members)
                for member, raw in zip(members, raws, strict=True):
                    record = None if raw is None else decode_record(int(_s(member), 16), raw)
                    # The index of a store written before the fix in apply_events.lua may
                    # list a certificate that is good again: never put it on a CRL.
                    if record is not None and record.status is Status.REVOKED:
                        yield record
                start += READ_CHUNK

    async def lookup_many(
        self, issuer: str, serials: Sequence[int]
    ) -> dict[int, tuple[PreSigned | None, CertRecord | None]]:
        """Pre-signed answers and records for many serials: one script call per partition,
        partitions fetched concurrently. The data plane's batched cache misses use it."""
        out: dict[int, tuple[PreSigned | None, CertRecord | None]] = {}

        async def fetch(p: int, group: list[int]) -> None:
            fields = [keys.serial_field(s) for s in group]
            blobs, raws = await self._lookup(
                keys=[keys.certs(issuer, p), *(keys.answer(issuer, p, s) for s in group)],
                args=fields,
            )
            for serial, blob, raw in zip(group, blobs, raws, strict=True):
                out[serial] = (
                    None if blob is None else _presigned(blob),
                    None if raw is None else decode_record(serial, raw),
                )

        await self._per_partition(issuer, serials, lambda s: s, fetch)
        return out

    # -- pre-signed answers --------------------------------------------------------------

    async def put_answer(
        self, issuer: str, record: CertRecord, answer: PreSigned, due_at: int
    ) -> bool:
        """Store a pre-signed answer unless the record changed since it was signed;
        `due_at` is when it must be re-signed (domain/timing.py: due_at)."""
        return await self.put_answers(issuer, [(record, answer, due_at)]) == 1

    async def put_answers(
        self, issuer: str, items: Sequence[tuple[CertRecord, PreSigned, int]]
    ) -> int:
        """Store many pre-signed answers with their re-sign times, one call per partition;
        each is written only if its record still has the version it was signed from.
        Returns how many were stored."""
        stored = 0

        async def write(p: int, group: list[tuple[CertRecord, PreSigned, int]]) -> None:
            nonlocal stored
            args: list[str | int | bytes] = [len(group)]
            for record, answer, due_at in group:
                blob = ANSWER_HEADER.pack(answer.this_update, answer.next_update) + answer.der
                serial = keys.serial_field(record.serial)
                args.extend((serial, record.version, blob, answer.next_update, due_at))
            answer_keys = [keys.answer(issuer, p, r.serial) for r, _, _ in group]
            # Await first, then add: `stored += await ...` would read `stored` before the
            # await and lose concurrent increments.
            done = int(
                await self._put_answers(
                    keys=[keys.certs(issuer, p), keys.due(issuer, p), *answer_keys], args=args
                )
            )
            stored += done

        await self._per_partition(issuer, items, lambda item: item[0].serial, write)
        return stored

    async def due_serials(
        self, issuer: str, partition: int, now: int, skip: int, count: int
    ) -> list[int]:
        """Serials of one partition whose answer is due by `now` (missing ones first),
        in due order, after skipping `skip` of them (those a sweep could not store)."""
        members = await self.client.zrange(
            keys.due(issuer, partition),
            "-inf",
            now,
            sortby=coredis.PureToken.BYSCORE,
            offset=skip,
            count=count,
        )
        return [int(_s(m), 16) for m in members]

    async def next_due(self, issuer: str, partition: int, count: int) -> list[int]:
        """The `count` serials of one partition due soonest, due or not yet."""
        members = await self.client.zrange(keys.due(issuer, partition), 0, count - 1)
        return [int(_s(m), 16) for m in members]

    async def count_due(self, issuer: str, partition: int, now: int) -> int:
        return int(await self.client.zcount(keys.due(issuer, partition), "-inf", now))

    async def drop_due(self, issuer: str, partition: int, serials: Sequence[int]) -> None:
        """Take serials out of the due index: expired certificates (answered live if
        anyone still asks) or serials with no record."""
        if serials:
            await self.client.zrem(
                keys.due(issuer, partition), [keys.serial_field(s) for s in serials]
            )

    async def partition_size(self, issuer: str, partition: int) -> int:
        """Records in one partition (HLEN: constant time)."""
        return int(await self.client.hlen(keys.certs(issuer, partition)))

    async def get_answers(
        self, issuer: str, partition: int, serials: Sequence[int]
    ) -> dict[int, PreSigned]:
        """The stored answers of some serials of one partition (MGET: one slot)."""
        if not serials:
            return {}
        blobs = await self.client.mget([keys.answer(issuer, partition, s) for s in serials])
        return {s: _presigned(b) for s, b in zip(serials, blobs, strict=True) if b is not None}

    async def get_answer(self, issuer: str, serial: int) -> PreSigned | None:
        p = keys.partition_of(serial, self.partitions(issuer))
        return (await self.get_answers(issuer, p, [serial])).get(serial)

    # -- leases ------------------------------------------------------------------------

    async def take_lease(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Hold lease `name` for `ttl_ms` from now (taken, or extended if ours)."""
        held = await self._take_lease(keys=[keys.lease(name)], args=[owner, ttl_ms])
        return bool(held)

    async def heartbeat(self, group: str, owner: str, ttl_ms: int) -> int:
        """Say `owner` is alive in `group` for `ttl_ms`; returns the group's live count."""
        return int(await self._heartbeat(keys=[keys.members(group)], args=[owner, ttl_ms]))

    async def drop_lease(self, name: str, owner: str) -> None:
        await self._drop_lease(keys=[keys.lease(name)], args=[owner])

    async def fence_crl_number(self, issuer: str, shard: int, number: int) -> int:
        """The CRL number to publish: `number`, or just above the highest any process
        recorded for this shard, recorded before it is used. So numbers grow across
        processes and after a takeover, whatever each process's origin or clock says."""
        for _ in range(8):
            got = await self._fence_crl(keys=[keys.crl_number(issuer, shard)], args=[number])
            if _s(got) == "ok":
                return number
            number = int(_s(got)) + 1
        raise StoreError("CRL number: could not record one above the others (contention)")

    # -- the inventory (responder/inventory/) ---------------------------------------------

    async def put_inventory(self, issuer: str, partition: int, events: Sequence[Event]) -> None:
        """Keep the facts of `issued` events of one partition, durably as events are:
        the ingestor acknowledges an event only once its facts are stored too."""
        items = [e for e in events if e.facts is not None]
        if not items:
            return
        args: list[str | int] = [len(items)]
        script_keys = [keys.inventory(issuer, partition)]
        for event in items:
            assert event.facts is not None
            spki = event.facts.spki_sha256 or ""
            args.extend([keys.serial_field(event.serial), event.facts.dumps(), spki])
            script_keys.append(keys.key_index(issuer, partition, spki) if spki else script_keys[0])
        with self._durable():
            await self._put_inventory(keys=script_keys, args=args)

    async def inventory_facts(self, issuer: str, serials: Sequence[int]) -> dict[int, CertFacts]:
        return await self._fields_of(
            issuer, serials, keys.inventory, lambda _, raw: CertFacts.loads(raw)
        )

    async def inventory_page(
        self, issuer: str, partition: int, cursor: int, count: int
    ) -> tuple[int, list[tuple[CertRecord, CertFacts | None]]]:
        """One HSCAN step over a partition's records, with each record's facts; the next
        cursor (0: the partition is done)."""
        cursor, found = await self.client.hscan(
            keys.certs(issuer, partition), cursor=cursor, count=count
        )
        if not found:
            return int(cursor), []
        names = list(found)
        facts = await self.client.hmget(keys.inventory(issuer, partition), names)
        out = []
        for name, raw_facts in zip(names, facts, strict=True):
            serial = int(_s(name), 16)
            out.append(
                (
                    decode_record(serial, found[name]),
                    None if raw_facts is None else CertFacts.loads(raw_facts),
                )
            )
        return int(cursor), out

    async def serials_with_key(self, issuer: str, spki_sha256: str) -> list[int]:
        """Every serial of the issuer recorded with this SubjectPublicKeyInfo hash."""
        out: list[int] = []

        async def one(p: int) -> None:
            found = await self.client.smembers(keys.key_index(issuer, p, spki_sha256))
            out.extend(int(_s(m), 16) for m in found)

        # 32 partitions in flight at a time: the pool's connections (an issuer may have
        # thousands of partitions)
        n = self.partitions(issuer)
        for start in range(0, n, 32):
            async with trio.open_nursery() as nursery:
                for p in range(start, min(n, start + 32)):
                    nursery.start_soon(one, p)
        return sorted(out)

    async def block_key(self, spki_sha256: str, why: dict[str, Any]) -> bool:
        """Add a key to the blocked list; False when it was already there."""
        return bool(await self.client.hsetnx(keys.BLOCKED_KEYS, spki_sha256, json.dumps(why)))

    async def blocked_keys(self, hashes: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """The blocked keys among `hashes` (all of them when None), with their records."""
        if hashes is None:
            found = await self.client.hgetall(keys.BLOCKED_KEYS)
            return {_s(k): json.loads(_s(v)) for k, v in found.items()}
        wanted = sorted(set(hashes))
        if not wanted:
            return {}
        values = await self.client.hmget(keys.BLOCKED_KEYS, wanted)
        return {h: json.loads(_s(v)) for h, v in zip(wanted, values, strict=True) if v}

    # -- revocation campaigns (inventory/campaign.py) ------------------------------------

    async def campaign_get(self, name: str) -> dict[str, str]:
        found = await self.client.hgetall(keys.campaign(name))
        return {_s(k): _s(v) for k, v in found.items()}

    async def campaign_set(self, name: str, fields: dict[str, str]) -> None:
        await self.client.hset(keys.campaign(name), fields)

    async def campaign_create(
        self, name: str, fields: dict[str, str], serials: Sequence[str], chunk: int
    ) -> None:
        """The serials first, the definition last: a crash while storing leaves no
        campaign, only a list the next create replaces."""
        key = keys.campaign_serials(name)
        await self.client.delete([key])
        for start in range(0, len(serials), chunk):
            await self.client.rpush(key, list(serials[start : start + chunk]))
        await self.client.hset(keys.campaign(name), fields)
        await self.client.sadd(keys.CAMPAIGNS, [name])

    async def campaign_serials(self, name: str, start: int, count: int) -> list[str]:
        found = await self.client.lrange(keys.campaign_serials(name), start, start + count - 1)
        return [_s(s) for s in found]

    async def campaign_names(self) -> list[str]:
        return sorted(_s(n) for n in await self.client.smembers(keys.CAMPAIGNS))

    # -- propagation: the ledger, purge positions, CRL publications ---------------------

    async def ledger_mark(self, issuer: str, step: str, values: dict[int, int]) -> dict[int, int]:
        """Record `step` at values[serial] (ms) for each revocation whose ledger exists
        and has no such step yet; one script call per partition. Returns the serials
        recorded now, with their acknowledgement times (ms)."""
        n = self.partitions(issuer)
        groups: dict[int, list[tuple[int, int]]] = {}
        for serial, at in values.items():
            groups.setdefault(keys.partition_of(serial, n), []).append((serial, at))
        done: dict[int, int] = {}
        for p, items in groups.items():
            for i in range(0, len(items), 1000):
                chunk = items[i : i + 1000]
                acks = await self._ledger_mark(
                    keys=[keys.ledger(issuer, p, s) for s, _ in chunk],
                    args=[step, *(at for _, at in chunk)],
                )
                for (serial, _), ack in zip(chunk, acks, strict=True):
                    if int(ack):
                        done[serial] = int(ack)
        return done

    async def ledger_get(self, issuer: str, serial: int) -> dict[str, str]:
        key = keys.ledger(issuer, keys.partition_of(serial, self.partitions(issuer)), serial)
        found = await self.client.hgetall(key)
        return {_s(k): _s(v) for k, v in found.items()}

    async def ledger_range(
        self, issuer: str, partition: int, since_ms: int, until_ms: int
    ) -> list[tuple[int, int]]:
        """(serial, acknowledged ms) of the partition's revocations in a time range."""
        found = await self.client.zrange(
            keys.ledger_index(issuer, partition),
            since_ms,
            until_ms,
            sortby=coredis.PureToken.BYSCORE,
            withscores=True,
        )
        return [(int(_s(m), 16), int(score)) for m, score in found]

    async def ledger_many(
        self, issuer: str, partition: int, serials: Sequence[int]
    ) -> dict[int, dict[str, str]]:
        out: dict[int, dict[str, str]] = {}

        async def one(serial: int) -> None:
            found = await self.client.hgetall(keys.ledger(issuer, partition, serial))
            if found:
                out[serial] = {_s(k): _s(v) for k, v in found.items()}

        # 32 in flight: the pool's connections, not one at a time
        for i in range(0, len(serials), 32):
            async with trio.open_nursery() as nursery:
                for serial in serials[i : i + 32]:
                    nursery.start_soon(one, serial)
        return out

    async def random_serials(self, issuer: str, count: int) -> list[int]:
        """About `count` serials of the issuer's certificates, at random (the prober's
        sample): HRANDFIELD over randomly chosen partitions."""
        import random

        n = self.partitions(issuer)
        out: set[int] = set()
        order = list(range(n))
        random.shuffle(order)
        for p in order[: max(1, count)]:
            if len(out) >= count:
                break
            found = await self.client.hrandfield(
                keys.certs(issuer, p), count=max(1, count // n + 1)
            )
            for field_name in found or ():
                out.add(int(_s(field_name), 16))
        return sorted(out)[:count]

    async def feed_page(
        self, issuer: str, partition: int, after: str, count: int
    ) -> tuple[list[tuple[str, Change]], str | None]:
        """Up to `count` entries of a partition's change stream after stream id `after`
        (with their ids), and the id of the stream's oldest entry (None: empty), which
        says whether entries after `after` were trimmed away."""
        key = keys.feed(issuer, partition)
        entries = await self.client.xrange(key, f"({after}" if after != "0" else "-", "+", count)
        first = await self.client.xrange(key, "-", "+", 1)
        out = []
        for entry in entries:
            f = {_s(k): _s(v) for k, v in entry.field_values.items()}
            sid = _s(entry.identifier)
            change = Change(
                issuer, int(f["s"], 16), Status(f["t"]), int(f["v"]), int(sid.split("-")[0])
            )
            out.append((sid, change))
        return out, (_s(first[0].identifier) if first else None)

    async def feed_last_id(self, issuer: str, partition: int) -> str:
        last = await self.client.xrevrange(keys.feed(issuer, partition), "+", "-", 1)
        return _s(last[0].identifier) if last else "0"

    async def get_strings(self, names: Sequence[str]) -> dict[str, str | None]:
        """Several string keys, one command each (they live in different slots)."""
        out: dict[str, str | None] = {}
        for name in names:
            value = await self.client.get(name)
            out[name] = _s(value) if value is not None else None
        return out

    async def set_string(self, name: str, value: str) -> None:
        await self.client.set(name, value)

    async def queue_purge(self, tags: Sequence[str], why: str, maxlen: int = 100_000) -> str:
        """Put a purge of `tags` on the durable queue every CDN target works through."""
        sid = await self.client.xadd(
            keys.PURGE_QUEUE,
            {"tags": " ".join(tags), "why": why},
            trim_strategy=coredis.PureToken.MAXLEN,
            threshold=maxlen,
            trim_operator=coredis.PureToken.APPROXIMATELY,
        )
        return _s(sid)

    async def purge_queue_page(
        self, after: str, count: int
    ) -> tuple[list[tuple[str, list[str], str]], str | None]:
        """(id, tags, why) entries after `after`, and the oldest id kept."""
        key = keys.PURGE_QUEUE
        entries = await self.client.xrange(key, f"({after}" if after != "0" else "-", "+", count)
        first = await self.client.xrange(key, "-", "+", 1)
        out = []
        for entry in entries:
            f = {_s(k): _s(v) for k, v in entry.field_values.items()}
            out.append((_s(entry.identifier), f.get("tags", "").split(), f.get("why", "")))
        return out, (_s(first[0].identifier) if first else None)

    async def purge_queue_last_id(self) -> str:
        last = await self.client.xrevrange(keys.PURGE_QUEUE, "+", "-", 1)
        return _s(last[0].identifier) if last else "0"

    async def record_crl_publication(self, issuer: str, fields: dict[str, str]) -> None:
        await self.client.xadd(
            keys.crl_publications(issuer),
            fields,
            trim_strategy=coredis.PureToken.MAXLEN,
            threshold=100_000,
            trim_operator=coredis.PureToken.APPROXIMATELY,
        )

    async def crl_publications(
        self, issuer: str, since_ms: int = 0, until_ms: int | None = None
    ) -> list[dict[str, str]]:
        end = "+" if until_ms is None else str(until_ms)
        entries = await self.client.xrange(keys.crl_publications(issuer), str(since_ms), end)
        return [
            {_s(k): _s(v) for k, v in e.field_values.items()} | {"id": _s(e.identifier)}
            for e in entries
        ]

    # -- change feed -------------------------------------------------------------------

    async def feed_entries(self, issuer: str, partition: int, after: str = "0") -> list[Change]:
        """Entries of one partition's durable change stream after a stream id."""
        entries = await self.client.xrange(keys.feed(issuer, partition), f"({after}", "+")
        out = []
        for entry in entries:
            fields = {_s(k): _s(v) for k, v in entry.field_values.items()}
            out.append(Change(issuer, int(fields["s"], 16), Status(fields["t"]), int(fields["v"])))
        return out

    @asynccontextmanager
    async def subscribe_changes(self) -> AsyncIterator[AsyncIterator[Change]]:
        """Live change notifications (pub/sub): low latency, may miss messages while
        disconnected, so a subscriber drops its cache when the subscription restarts.

        coredis would by default reconnect and resubscribe by itself, silently: what
        was published in between (a revocation) would be lost with nothing to tell the
        subscriber, whose cache would go on serving the old answer. retry_policy=None
        makes a lost connection end the subscription with an error instead, so the
        caller resubscribes and resyncs (changes.py)."""
        try:
            async with self.client.pubsub(
                channels=[keys.CHANGES_CHANNEL], retry_policy=None
            ) as pubsub:

                async def messages() -> AsyncIterator[Change]:
                    async for message in pubsub:
                        if message["type"] != "message":
                            continue
                        # One notification per applied batch and partition, a line each.
                        for line in _s(message["data"]).split("\n"):
                            issuer, serial, status, version, at_ms = line.split(" ")
                            yield Change(
                                issuer, int(serial, 16), Status(status), int(version), int(at_ms)
                            )

                yield messages()
        except* (anyio.ClosedResourceError, anyio.BrokenResourceError) as group:
            # coredis tries to UNSUBSCRIBE while tearing down a connection that is already
            # closed (shutdown, store gone); there is nothing left to unsubscribe from.
            log.debug("change subscription closed: %s", group.exceptions[0])


def _presigned(blob: bytes) -> PreSigned:
    this_update, next_update = ANSWER_HEADER.unpack_from(blob)
    return PreSigned(this_update, next_update, bytes(blob[ANSWER_HEADER.size :]))


def _single(group: BaseExceptionGroup) -> BaseException:
    """The only leaf of a group of one, or the group itself."""
    current: BaseException = group
    while isinstance(current, BaseExceptionGroup) and len(current.exceptions) == 1:
        current = current.exceptions[0]
    return current


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
