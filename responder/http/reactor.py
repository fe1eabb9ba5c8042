"""The GET reactor: cached answers served from one epoll set inside a trio task.

Why it exists: on cached GETs most of a trio server's time is the per-connection
machinery (a SocketStream read, an epoll registration per wait, a task switch, the
parser's callbacks, a Request object) around a dictionary lookup. The reactor's
engine (compiled from ext/http_reactor.pyx, or its pure twin) holds the keep-alive
connections that are between requests in its own epoll set. One trio task waits on
that set's descriptor (`trio.lowlevel.wait_readable`) and, per wake-up, the engine
reads every ready connection, answers plain GETs whose answers are in the host's
answer arena (responder/answers/arena.py, read in place) and POSTs the data plane can
answer without waiting (a nonce signed now by a software key, with the status record
in memory: one Python call, no task), and hands every other connection, with the
bytes it read, to the trio server.

So trio still owns every task and every deadline that matters: a connection with
anything but complete, cacheable GETs on it (a POST, a miss, a slow or partial
request, a client that does not read) is served by `HttpServer` exactly as without
the reactor, and comes back to the reactor when it is idle again after a GET.
The reactor only enforces the idle timeout of the connections it holds, and gives
up the one idle the longest when the server is at max_connections.
"""

import time
from collections.abc import Callable
from typing import Any

import trio

from ..answers.arena import Arena, Record
from ..observability import metrics
from ..ocsp.fast import load
from . import _reactor_py
from .protocol import Limits, date_header

engine_module, REACTOR_COMPILED = load("responder.http._reactor_fast", _reactor_py)
# Where handed-off connections go: (fd, bytes read, bytes not yet sent, whether it
# closes once they are sent).
Adopt = Callable[[int, bytes, bytes, bool], None]
# Hits per status (good, revoked, unknown) since the last call.
OnHits = Callable[[int, int, int], None]
Post = _reactor_py.Post

_IDLE = metrics.HTTP_LIMITS.labels("idle")
_SHED = metrics.HTTP_LIMITS.labels("shed")
_ANSWERS = metrics.REACTOR_ANSWERS
_HANDOFFS = metrics.REACTOR_HANDOFFS


class ArenaReader:
    """What reads the arena for the data plane: the compiled reader in place, or the
    pure twin (`module` picks one, for the differential tests)."""

    def __init__(self, arena: Arena, module: Any = None) -> None:
        self.module = module or engine_module
        self.arena = arena
        self.reader = self.module.Reader(arena)

    def lookup(self, url: bytes, now: int, stale_ok: bool = False) -> Record | None:
        return self.reader.lookup(url, now, stale_ok)  # type: ignore[no-any-return]


class Reactor:
    """An engine run by one trio task, plus its idle sweeper."""

    SWEEP_INTERVAL = 0.25

    def __init__(
        self,
        reader: ArenaReader,
        on_hits: OnHits,
        limits: Limits | None = None,
        cap: int = 0,
        clock: Callable[[], float] = time.time,
        post: Post | None = None,
        post_targets: tuple[bytes, ...] = (),
    ) -> None:
        """`post` answers a POST body to one of `post_targets` without waiting, or
        says None (the trio server answers it)."""
        limits = limits or Limits()
        self.engine = reader.module.Engine(
            reader.reader,
            post,
            cap,
            limits.max_header_bytes,
            limits.max_pipelined,
            limits.max_body_bytes,
            post_targets,
        )
        self.on_hits = on_hits
        self.idle_timeout = limits.idle_timeout
        self.clock = clock
        self.posts = post is not None  # whether it answers POSTs at all

    @property
    def connections(self) -> int:
        return int(self.engine.connections)

    def add(self, fd: int) -> None:
        """Take a connection (non-blocking, between requests) from the trio server."""
        self.engine.add(fd, trio.current_time())
        metrics.HTTP_CONNECTIONS.inc()

    def accept(self, listener: object, limit: int) -> tuple[int, int]:
        """Accept up to `limit` queued connections from `listener` (a non-blocking stdlib
        socket) into the reactor: (how many, 0 or the errno that stopped it)."""
        accepted, error = self.engine.accept(listener, limit, trio.current_time())
        if accepted:
            metrics.HTTP_CONNECTIONS.inc(accepted)
        return int(accepted), int(error)

    def evict(self) -> bool:
        """Close the connection idle the longest; False if the reactor holds none."""
        if not self.engine.evict():
            return False
        _SHED.inc()
        metrics.HTTP_CONNECTIONS.dec()
        return True

    async def run(self, adopt: Adopt) -> None:
        engine = self.engine
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._sweep)
                while True:
                    await trio.lowlevel.wait_readable(engine.fileno())
                    wall = self.clock()
                    handoffs = engine.poll(trio.current_time(), int(wall), date_header.now(wall))
                    self._account()
                    if handoffs:
                        _HANDOFFS.inc(len(handoffs))
                    for fd, data, unsent, close in handoffs:
                        metrics.HTTP_CONNECTIONS.dec()
                        adopt(fd, data, unsent, close)
        finally:
            closing = self.connections
            engine.close()
            metrics.HTTP_CONNECTIONS.dec(closing)

    def _account(self) -> None:
        # A POST answer that raised was counted and logged by the data plane
        # (post_inline) and answered by the full path; the engine's count is its
        # backstop for a callback that does not catch.
        good, revoked, unknown, posts, closed, _ = self.engine.take_counts()
        if good or revoked or unknown:
            self.on_hits(good, revoked, unknown)
        if good or revoked or unknown or posts:
            _ANSWERS.inc(good + revoked + unknown + posts)
        if closed:
            metrics.HTTP_CONNECTIONS.dec(closed)

    async def _sweep(self) -> None:
        while True:
            await trio.sleep(self.SWEEP_INTERVAL)
            expired = self.engine.expire(trio.current_time() - self.idle_timeout)
            if expired:
                _IDLE.inc(expired)
                metrics.HTTP_CONNECTIONS.dec(expired)
