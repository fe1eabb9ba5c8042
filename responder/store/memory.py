"""An in-memory store for unit tests of one module: the protocols of protocols.py over
dicts, with the status rules of responder/domain/transitions.py and a clock passed in.

Never a stand-in for Valkey in integration tests: what it shares with the real store
is the domain rules (which the Lua is checked against) and the protocols; durability,
atomicity across processes and failures are the real store's, and tested there.
"""

import math
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..config import IssuerConfig
from ..domain.events import Event, Outcome
from ..domain.facts import CertFacts
from ..domain.records import CertRecord
from ..domain.transitions import apply
from . import keys
from .errors import StoreError, StoreUnavailable
from .store import Change, PreSigned


class MemoryStore:
    durability_timeout = 2.0  # nothing to wait for; what the Ingestor's budget reads

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._partitions: dict[str, int] = {}
        self.records: dict[tuple[str, int], CertRecord] = {}
        self.answers: dict[tuple[str, int], PreSigned] = {}
        # (issuer, partition) -> serial -> when its answer is due (0: it has none)
        self.due: dict[tuple[str, int], dict[int, float]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._members: dict[str, dict[str, float]] = {}
        self._subscribers: list[trio.MemorySendChannel[Change]] = []
        self.facts: dict[tuple[str, int], CertFacts] = {}
        self.blocked: dict[str, dict[str, Any]] = {}
        # A unit test sets this to make reads fail as a store that is away does.
        self.down = False

    # -- issuers and records ----------------------------------------------------------

    async def register_issuers(self, issuers: Iterable[IssuerConfig]) -> None:
        for issuer in issuers:
            self._partitions[issuer.name] = issuer.partitions

    def partitions(self, issuer: str) -> int:
        try:
            return self._partitions[issuer]
        except KeyError:
            raise StoreError(f"issuer {issuer!r} is not registered with the store") from None

    async def put_inventory(self, issuer: str, partition: int, events: Sequence[Event]) -> None:
        self._check()
        for event in events:
            if event.facts is not None:
                old = self.facts.get((issuer, event.serial))
                self.facts[(issuer, event.serial)] = (
                    event.facts if old is None else old.merged(event.facts)
                )

    async def blocked_keys(self, hashes: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        self._check()
        if hashes is None:
            return dict(self.blocked)
        return {h: self.blocked[h] for h in hashes if h in self.blocked}

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("memory store set down by the test")

    async def get_record(self, issuer: str, serial: int) -> CertRecord | None:
        self._check()
        return self.records.get((issuer, serial))

    async def get_records(self, issuer: str, serials: Sequence[int]) -> dict[int, CertRecord]:
        self._check()
        return {s: r for s in serials if (r := self.records.get((issuer, s))) is not None}

    async def apply_events(
        self,
        issuer: str,
        partition: int,
        events: Sequence[Event],
        crl_shards: int,
        now: int | None = None,
    ) -> list[tuple[Outcome, str]]:
        at = int(self.clock()) if now is None else now
        out = []
        for event in events:
            key = (issuer, event.serial)
            t = apply(self.records.get(key), event, at, event.serial % crl_shards)
            if t.record is not None:
                self.records[key] = t.record
            if t.resign:
                self.answers.pop(key, None)
                self.due.setdefault((issuer, partition), {})[event.serial] = 0
            if t.applied and t.record is not None:
                self._announce(Change(issuer, event.serial, t.record.status, t.record.version))
            out.append((t.outcome, t.message))
        return out

    # -- answers and the due index ------------------------------------------------------

    async def put_answers(
        self, issuer: str, items: Sequence[tuple[CertRecord, PreSigned, int]]
    ) -> int:
        stored = 0
        n = self.partitions(issuer)
        for record, answer, due_at in items:
            current = self.records.get((issuer, record.serial))
            if current is None or current.version != record.version:
                continue  # signed from a status that has changed since
            if answer.next_update <= self.clock():
                continue
            self.answers[(issuer, record.serial)] = answer
            self.due.setdefault((issuer, keys.partition_of(record.serial, n)), {})[
                record.serial
            ] = due_at
            stored += 1
        return stored

    async def get_answers(
        self, issuer: str, partition: int, serials: Sequence[int]
    ) -> dict[int, PreSigned]:
        now = self.clock()
        out = {}
        for serial in serials:
            answer = self.answers.get((issuer, serial))
            if answer is not None and answer.next_update > now:  # expired keys are gone
                out[serial] = answer
        return out

    async def put_answer(
        self, issuer: str, record: CertRecord, answer: PreSigned, due_at: int
    ) -> bool:
        return await self.put_answers(issuer, [(record, answer, due_at)]) == 1

    async def lookup_many(
        self, issuer: str, serials: Sequence[int]
    ) -> dict[int, tuple[PreSigned | None, CertRecord | None]]:
        self._check()
        now = self.clock()
        out: dict[int, tuple[PreSigned | None, CertRecord | None]] = {}
        for serial in serials:
            answer = self.answers.get((issuer, serial))
            if answer is not None and answer.next_update <= now:
                answer = None  # the real store's answer keys expire at nextUpdate
            out[serial] = (answer, self.records.get((issuer, serial)))
        return out

    async def get_answer(self, issuer: str, serial: int) -> PreSigned | None:
        p = keys.partition_of(serial, self.partitions(issuer))
        return (await self.get_answers(issuer, p, [serial])).get(serial)

    def _ordered(self, issuer: str, partition: int) -> list[tuple[float, str, int]]:
        # The store's order: by score, then by member (the serial's hex spelling).
        entries = self.due.get((issuer, partition), {})
        return sorted((score, keys.serial_field(s), s) for s, score in entries.items())

    async def due_serials(
        self, issuer: str, partition: int, now: int, skip: int, count: int
    ) -> list[int]:
        due = [s for score, _, s in self._ordered(issuer, partition) if score <= now]
        return due[skip : skip + count]

    async def next_due(self, issuer: str, partition: int, count: int) -> list[int]:
        return [s for _, _, s in self._ordered(issuer, partition)[:count]]

    async def count_due(self, issuer: str, partition: int, now: int) -> int:
        return sum(1 for score in self.due.get((issuer, partition), {}).values() if score <= now)

    async def drop_due(self, issuer: str, partition: int, serials: Sequence[int]) -> None:
        entries = self.due.get((issuer, partition), {})
        for serial in serials:
            entries.pop(serial, None)

    async def partition_size(self, issuer: str, partition: int) -> int:
        n = self.partitions(issuer)
        return sum(
            1 for (i, s) in self.records if i == issuer and keys.partition_of(s, n) == partition
        )

    # -- change feed ------------------------------------------------------------------

    def _announce(self, change: Change) -> None:
        for send in list(self._subscribers):
            try:
                send.send_nowait(change)
            except (trio.WouldBlock, trio.BrokenResourceError):
                self._subscribers.remove(send)  # like pub/sub: a slow subscriber misses

    def drop_subscriptions(self) -> None:
        """End every subscription, as a store restart does (tests of resync)."""
        for send in self._subscribers:
            send.close()
        self._subscribers.clear()

    @asynccontextmanager
    async def subscribe_changes(self) -> AsyncIterator[AsyncIterator[Change]]:
        send, receive = trio.open_memory_channel[Change](math.inf)
        self._subscribers.append(send)
        try:
            yield receive
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)

    # -- leases -----------------------------------------------------------------------

    async def take_lease(self, name: str, owner: str, ttl_ms: int) -> bool:
        now = self.clock()
        holder = self._leases.get(name)
        if holder is None or holder[1] <= now or holder[0] == owner:
            self._leases[name] = (owner, now + ttl_ms / 1000)
            return True
        return False

    async def drop_lease(self, name: str, owner: str) -> None:
        if self._leases.get(name, ("", 0.0))[0] == owner:
            del self._leases[name]

    async def heartbeat(self, group: str, owner: str, ttl_ms: int) -> int:
        now = self.clock()
        members = self._members.setdefault(group, {})
        for other, until in list(members.items()):
            if until <= now:
                del members[other]
        members[owner] = now + ttl_ms / 1000
        return len(members)
