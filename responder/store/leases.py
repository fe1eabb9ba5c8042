"""Leases in the store, so that several revocd processes on one store split the
background work instead of each doing all of it.

A lease is one key holding its owner's id with a time to live (TAKE_LEASE in
scripts.py takes it when free and extends it when ours, atomically). A process that
dies stops extending; the key expires and another process takes the work over at its
next attempt, so takeover happens within one lease period (`ttl`).

A holder trusts its lease only until `ttl * TRUST` after it last took or extended it,
measured on its own clock from before the request was sent: a process paused longer
than that (a stopped VM, a long GC) asks the store again before it acts, instead of
acting on a lease that may have passed to another process meanwhile.

Work made of many leases (the pre-signer's partitions) is balanced: each process says
it is alive in the work's group, and holds its fair share, the lease count divided by
the live processes, rounded up. A process above its share gives the surplus back, one
below it takes free leases, so a second process started next to a first gets half the
partitions within a few keeper rounds, and the survivor of two takes them all back.
"""

import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence

import trio

from .errors import StoreError
from .protocols import LeaseStorage

log = logging.getLogger("revocd.leases")

LEASE_TTL = 30.0
# Fraction of the TTL a taken lease is trusted for without asking the store again.
TRUST = 0.5


def owner_id() -> str:
    """Unique per process start: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leases:
    def __init__(
        self,
        store: LeaseStorage,
        ttl: float = LEASE_TTL,
        owner: str | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.owner = owner or owner_id()
        self.clock = clock
        self._trusted_until: dict[str, float] = {}

    async def hold(self, name: str) -> bool:
        """Whether this process holds lease `name` now (taking or extending it as
        needed). A store failure means no: work is skipped rather than done twice."""
        now = self.clock()
        if self.trusted(name):
            return True
        try:
            held = await self.store.take_lease(name, self.owner, int(self.ttl * 1000))
        except StoreError as exc:
            log.warning("lease %s not confirmed (%s); skipping its work for now", name, exc)
            held = False
        if held:
            if name not in self._trusted_until:
                log.info("lease %s taken by %s", name, self.owner)
            self._trusted_until[name] = now + self.ttl * TRUST
        elif self._trusted_until.pop(name, None) is not None:
            log.warning("lease %s lost to another process", name)
        return held

    def holds(self, name: str) -> bool:
        """Taken by this process and not known lost (it may need extending)."""
        return name in self._trusted_until

    async def balance(self, group: str, names: Sequence[str]) -> set[str]:
        """Hold a fair share of `names` among the live processes of `group`: extend the
        ones held, give back the surplus, take free ones up to the share. Returns the
        names held afterwards. Called a few times per lease period by a keeper task."""
        try:
            live = await self.store.heartbeat(group, self.owner, int(self.ttl * 1000))
        except StoreError as exc:
            log.warning("%s processes not counted (%s); keeping what is held", group, exc)
            return {n for n in names if self.trusted(n)}
        share = -(-len(names) // max(1, live))
        held = [n for n in names if self.holds(n) and await self.hold(n)]
        for name in held[share:]:
            await self.release(name)
        held = held[:share]
        for name in names:
            if len(held) >= share:
                break
            if not self.holds(name) and await self.hold(name):
                held.append(name)
        return set(held)

    async def release(self, name: str) -> None:
        """Give one lease back, so another process can take it at once."""
        if self._trusted_until.pop(name, None) is not None:
            with contextlib.suppress(StoreError):  # it expires by itself
                await self.store.drop_lease(name, self.owner)
            log.info("lease %s given back by %s", name, self.owner)

    def trusted(self, name: str) -> bool:
        """Held and trusted now, without asking the store."""
        return self._trusted_until.get(name, -1.0) > self.clock()

    async def release_all(self) -> None:
        """Give back every lease held, so another process takes over at once."""
        for name in list(self._trusted_until):
            with contextlib.suppress(StoreError):  # it expires by itself
                await self.store.drop_lease(name, self.owner)
        self._trusted_until.clear()
