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
"""

import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable

import trio

from .store import Store, StoreError

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
        store: Store,
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

    def trusted(self, name: str) -> bool:
        """Held and trusted now, without asking the store."""
        return self._trusted_until.get(name, -1.0) > self.clock()

    async def release_all(self) -> None:
        """Give back every lease held, so another process takes over at once."""
        for name in list(self._trusted_until):
            with contextlib.suppress(StoreError):  # it expires by itself
                await self.store.drop_lease(name, self.owner)
        self._trusted_until.clear()
