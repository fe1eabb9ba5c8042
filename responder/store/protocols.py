"""What each consumer needs of the store, as small protocols (consumer-side interfaces).

`Store` (store.py, over the Redis protocol) and `MemoryStore` (memory.py, for unit
tests) both provide them; code written against these runs on either. Every method
raises only StoreError (errors.py) for the store's failures.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from ..domain.events import Event, Outcome
from ..domain.records import CertRecord
from .store import Change, PreSigned


class RecordReader(Protocol):
    def partitions(self, issuer: str) -> int: ...

    async def get_record(self, issuer: str, serial: int) -> CertRecord | None: ...

    async def get_records(self, issuer: str, serials: Sequence[int]) -> dict[int, CertRecord]: ...


class EventApplier(Protocol):
    # Seconds an acknowledgement may wait for durability (store.durability_timeout_ms).
    @property
    def durability_timeout(self) -> float: ...

    def partitions(self, issuer: str) -> int: ...

    async def apply_events(
        self,
        issuer: str,
        partition: int,
        events: Sequence[Event],
        crl_shards: int,
        now: int | None = None,
    ) -> list[tuple[Outcome, str]]: ...

    # The inventory facts of `issued` events, kept as durably as the events
    async def put_inventory(self, issuer: str, partition: int, events: Sequence[Event]) -> None: ...

    async def blocked_keys(
        self, hashes: Sequence[str] | None = None
    ) -> dict[str, dict[str, Any]]: ...


class AnswerStorage(Protocol):
    """Pre-signed answers and the due index that says which to re-sign."""

    async def put_answers(
        self, issuer: str, items: Sequence[tuple[CertRecord, PreSigned, int]]
    ) -> int: ...

    async def get_answers(
        self, issuer: str, partition: int, serials: Sequence[int]
    ) -> dict[int, PreSigned]: ...

    async def due_serials(
        self, issuer: str, partition: int, now: int, skip: int, count: int
    ) -> list[int]: ...

    async def next_due(self, issuer: str, partition: int, count: int) -> list[int]: ...

    async def count_due(self, issuer: str, partition: int, now: int) -> int: ...

    async def drop_due(self, issuer: str, partition: int, serials: Sequence[int]) -> None: ...

    async def partition_size(self, issuer: str, partition: int) -> int: ...


class ChangeFeed(Protocol):
    def subscribe_changes(self) -> AbstractAsyncContextManager[AsyncIterator[Change]]: ...


class LeaseStorage(Protocol):
    async def take_lease(self, name: str, owner: str, ttl_ms: int) -> bool: ...

    async def drop_lease(self, name: str, owner: str) -> None: ...

    async def heartbeat(self, group: str, owner: str, ttl_ms: int) -> int: ...


class PresignStore(RecordReader, AnswerStorage, ChangeFeed, Protocol):
    """What the pre-signer uses."""
