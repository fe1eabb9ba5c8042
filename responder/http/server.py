"""The trio side of the data plane's HTTP: accept, read, write, deadlines, caps.

All parsing is `protocol.Connection`'s; this module only moves bytes and keeps time.

Fault boundary: `serve_connection` is the only place a connection's exceptions end.
What the client caused arrives as `ProtocolError` and is answered with its status
hint; a peer that vanished ends the connection quietly; anything else is a revocd bug,
answered 500, counted in revocd_http_internal_errors_total and logged with its
traceback. None of them leaves the handler, so no request can stop the server, a
worker or another connection. Only trio's own Cancelled (shutdown) passes through.

Deadlines, per connection, by what it is doing (protocol.Limits says why each exists):
idle (waiting for a request) → idle_timeout; first byte of a request to its last
header → header_timeout; headers to last body byte → body_timeout; computing and
sending the answer → send_timeout. One sweeper task enforces them all by cancelling
the connection's scope, which keeps cancel-scope bookkeeping off the per-read path.

At max_connections a new connection does not wait: the open connection that is not
being answered and has sent the fewest bytes of its current request, the longest
ago, is closed (408 if it was mid-request) to make room, so slow clients cannot
starve fast ones.
"""

import contextlib
import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from ..observability import metrics
from ..observability.logs import LogBudget
from .protocol import (
    CONTINUE,
    Connection,
    Limits,
    Phase,
    ProtocolError,
    Request,
    Response,
    error_bytes,
    plain,
    serialize,
)

if TYPE_CHECKING:
    from .reactor import Reactor

log = logging.getLogger("revocd.dataplane")

Handler = Callable[[Request], Awaitable[Response]]
# The hot path: complete response bytes for a request, or None to take the handler.
Fast = Callable[[Request], bytes | None]

_PEER_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
_TIMEOUT_LIMIT = {
    Phase.IDLE: "idle",
    Phase.HEADERS: "header_timeout",
    Phase.BODY: "body_timeout",
}
# Connections accepted per wake-up of the accept task (see HttpServer._accept).
ACCEPT_BATCH = 256
_ACCEPT_CAPACITY = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_RETRY = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR}
# The listening socket itself is unusable: nothing to retry.
_LISTENER_GONE = {errno.EBADF, errno.ENOTSOCK, errno.EINVAL, errno.EOPNOTSUPP}
# Tracebacks of internal errors logged per minute; the rest are counted only, so a
# request that triggers a bug cannot be replayed to fill the disk.
_TRACEBACKS_PER_MINUTE = 10


class _Conn:
    """What the sweeper and the shedding order read about one connection."""

    __slots__ = ("answering", "deadline", "phase", "proto", "scope", "since", "why")

    def __init__(self, scope: trio.CancelScope, proto: Connection, now: float) -> None:
        self.scope = scope
        self.proto = proto
        self.phase: Phase | None = None
        self.since = now  # when `phase` began
        self.deadline = now
        self.answering = False
        self.why = ""  # the limit that closed it, once one did


class HttpServer:
    """Serves one handler on trio listeners (or any trio stream, for tests).

    `fast`, when given, is tried first for a lone complete request and may return the
    complete response bytes (cache hits); otherwise the async `handler` answers.

    `reactor`, when given, holds every connection that is between requests: new ones
    go to it on accept, and the server gets them (with what the reactor read) only
    for what the reactor does not answer itself; after answering a GET, an idle
    connection goes back to it. See responder/http/reactor.py.
    """

    SWEEP_INTERVAL = 0.25

    def __init__(
        self,
        handler: Handler,
        limits: Limits | None = None,
        fast: Fast | None = None,
        hold: Callable[[float], Awaitable[None]] | None = None,
        reactor: "Reactor | None" = None,
    ) -> None:
        self.handler = handler
        self.fast = fast
        self.reactor = reactor
        # How a connection told tryLater waits, at most the given seconds, before its
        # next request is read (LoopLag.hold releases it early once the overload has
        # passed); a plain sleep without one.
        self.hold = hold or trio.sleep
        self.limits = limits or Limits()
        self._conns: set[_Conn] = set()
        self._shedding = 0
        self._tracebacks = LogBudget(_TRACEBACKS_PER_MINUTE, trio.current_time)
        limits = self.limits
        self._timeouts = {
            Phase.IDLE: limits.idle_timeout,
            Phase.HEADERS: limits.header_timeout,
            Phase.BODY: limits.body_timeout,
        }

    @property
    def connections(self) -> int:
        held = self.reactor.connections if self.reactor is not None else 0
        return len(self._conns) + held

    async def serve(
        self,
        listeners: list[trio.SocketListener],
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.sweep)
            if self.reactor is not None:
                nursery.start_soon(self.reactor.run, lambda *c: self._adopt(nursery, *c))
            for listener in listeners:
                nursery.start_soon(self._accept, listener.socket, nursery)
            task_status.started(listeners)

    async def _accept(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        """Accept every connection the kernel has queued, then wait for more.

        trio.serve_listeners accepts one connection per scheduler pass; with a thousand
        busy connections a pass takes a tenth of a second or more, so a burst of new
        connections waited seconds in the kernel's queue before their first byte was
        read. Draining the queue (up to ACCEPT_BATCH per wake-up, so a flood of
        connects cannot starve the connections already open) keeps that wait to one
        pass."""
        raw = sock._sock  # type: ignore[attr-defined]  # the stdlib socket, non-blocking
        reactor = self.reactor
        while True:
            await trio.lowlevel.wait_readable(sock)
            if reactor is not None:
                # Below the cap, the reactor accepts in C straight into its epoll set
                # (no Python socket object per connection); at the cap, the loop below
                # makes room one connection at a time.
                room = self.limits.max_connections - (self.connections - self._shedding)
                if room > 0:
                    _, error = reactor.accept(raw, min(room, ACCEPT_BATCH))
                    if error in _LISTENER_GONE:
                        raise OSError(error, os.strerror(error))  # a revocd bug
                    if error not in (0, errno.EAGAIN, *_ACCEPT_RETRY):
                        # Out of descriptors or memory, or the epoll set full: the
                        # connections open now are served; new ones wait in the
                        # kernel's queue until some close.
                        metrics.HTTP_LIMITS.labels("accept_capacity").inc()
                        log.error("accept: %s; retrying in 0.1 s", os.strerror(error))
                        await trio.sleep(0.1)
                    await trio.lowlevel.checkpoint()
                    continue
            for _ in range(ACCEPT_BATCH):
                try:
                    conn, _ = raw.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in _ACCEPT_RETRY:
                        continue  # that connection died before we took it
                    if exc.errno in _ACCEPT_CAPACITY:
                        # Out of descriptors or memory: the connections open now are
                        # served; new ones wait in the kernel's queue until some close.
                        metrics.HTTP_LIMITS.labels("accept_capacity").inc()
                        log.error("accept: %s; retrying in 0.1 s", os.strerror(exc.errno))
                        await trio.sleep(0.1)
                        break
                    raise
                if self.reactor is not None and self._make_room():
                    conn.setblocking(False)
                    if conn.family != socket.AF_UNIX:
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.reactor.add(conn.detach())
                    continue
                stream = trio.SocketStream(trio.socket.from_stdlib_socket(conn))
                nursery.start_soon(self._run, stream)
            await trio.lowlevel.checkpoint()

    def _adopt(
        self, nursery: trio.Nursery, fd: int, data: bytes, unsent: bytes, close: bool
    ) -> None:
        """A connection the reactor hands over, with what it read and did not answer
        (or what it could not send, and whether the connection ends after that)."""
        try:
            sock = trio.socket.from_stdlib_socket(socket.socket(fileno=fd))
        except OSError:
            # Not a socket any more (a revocd bug): nothing to answer. Never let one
            # connection stop the reactor's task.
            with contextlib.suppress(OSError):
                os.close(fd)
            return
        nursery.start_soon(self._run, trio.SocketStream(sock), data, unsent, close)

    async def _run(
        self,
        stream: trio.SocketStream,
        data: bytes = b"",
        unsent: bytes = b"",
        close: bool = False,
    ) -> None:
        back = False
        try:
            back = await self.serve_connection(stream, data, unsent, close)
        finally:
            if back and self.reactor is not None:
                # Idle after a GET: the reactor waits for its next request. trio no
                # longer waits on the descriptor, so it can change hands.
                self.reactor.add(stream.socket.detach())
            else:
                await trio.aclose_forcefully(stream)

    async def sweep(self) -> None:
        """Cancel every connection past its deadline; runs for the server's lifetime."""
        while True:
            await trio.sleep(self.SWEEP_INTERVAL)
            now = trio.current_time()
            for conn in list(self._conns):
                if now > conn.deadline and not conn.why:
                    conn.why = (
                        "send_timeout"
                        if conn.answering
                        else _TIMEOUT_LIMIT[conn.phase or Phase.IDLE]
                    )
                    conn.scope.cancel()

    # --- admission -------------------------------------------------------------------

    def _make_room(self) -> bool:
        """At max_connections: close the cheapest connection to lose. False if every
        open connection is being answered (then the new one is refused)."""
        if self.connections - self._shedding < self.limits.max_connections:
            return True
        # The reactor's connections are all idle between requests, with no byte of a
        # request read: the cheapest to lose, the one idle the longest first.
        if self.reactor is not None and self.reactor.evict():
            return True
        victim = None
        for conn in self._conns:
            if conn.answering or conn.why:
                continue
            if victim is None or (conn.proto.received, conn.since) < (
                victim.proto.received,
                victim.since,
            ):
                victim = conn
        if victim is None:
            return False
        victim.why = "shed"
        self._shedding += 1
        victim.scope.cancel()
        return True

    async def serve_connection(
        self,
        stream: trio.abc.Stream,
        data: bytes = b"",
        unsent: bytes = b"",
        close: bool = False,
    ) -> bool:
        """One client connection, from accept to close. The fault boundary.

        `data`, `unsent` and `close` come with a connection the reactor hands over:
        what it read and did not answer, what it could not send and whether the
        connection ends after that (the connection was already admitted). True when
        the connection is idle after a GET and should go back to the reactor instead
        of closing."""
        if not (data or unsent) and not self._make_room():
            metrics.HTTP_LIMITS.labels("max_connections").inc()
            with contextlib.suppress(*_PEER_GONE), trio.move_on_after(1):
                await stream.send_all(serialize(plain(503, b"too many connections"), False, False))
            return False
        scope = trio.CancelScope()
        conn = _Conn(scope, Connection(self.limits), trio.current_time())
        self._conns.add(conn)
        metrics.HTTP_CONNECTIONS.inc()
        back = False
        try:
            with scope:
                back = await self._serve(conn, stream, data, unsent, close)
            if scope.cancelled_caught:
                back = False
                await self._closed_by_limit(conn, stream)
        except _PEER_GONE:
            pass  # the peer went away; nothing to answer
        except Exception:
            metrics.HTTP_INTERNAL_ERRORS.inc()
            self._log_internal_error()
            with contextlib.suppress(*_PEER_GONE), trio.move_on_after(1):
                await stream.send_all(serialize(plain(500, b"internal error"), False, False))
        finally:
            self._conns.discard(conn)
            if conn.why == "shed":
                self._shedding -= 1
            metrics.HTTP_CONNECTIONS.dec()
        return back

    def _log_internal_error(self) -> None:
        if self._tracebacks.allow():
            log.exception("data plane connection failed (a revocd bug); answered 500, closed")

    async def _closed_by_limit(self, conn: _Conn, stream: trio.abc.Stream) -> None:
        why = conn.why or "idle"
        metrics.HTTP_LIMITS.labels(why).inc()
        # RFC 9110 section 15.5.9: 408 tells a client mid-request that we stopped waiting;
        # an idle keep-alive connection is closed without a word (clients expect that).
        if conn.proto.phase is not Phase.IDLE and why != "send_timeout":
            with contextlib.suppress(*_PEER_GONE), trio.move_on_after(1):
                await stream.send_all(serialize(plain(408, b"request timeout"), False, False))

    # --- the read loop ---------------------------------------------------------------

    def _arm(self, conn: _Conn) -> None:
        """Set the deadline of what the connection is doing now. A phase's clock starts
        when the phase begins and is not reset by further bytes."""
        now = trio.current_time()
        phase = conn.proto.phase
        if phase is not conn.phase:
            conn.phase = phase
            conn.since = now
        conn.answering = False
        conn.deadline = conn.since + self._timeouts[phase]

    def _answering(self, conn: _Conn) -> None:
        conn.answering = True
        conn.phase = None  # the next phase (idle, usually) starts when the answer is out
        conn.deadline = trio.current_time() + self.limits.send_timeout

    async def _serve(
        self,
        conn: _Conn,
        stream: trio.abc.Stream,
        data: bytes | bytearray = b"",
        unsent: bytes = b"",
        close: bool = False,
    ) -> bool:
        """Read, answer, repeat. True when the connection goes back to the reactor."""
        proto = conn.proto
        fast = self.fast
        # Idle connections wait in the reactor, if there is one; but only those last
        # asked something it answers (a GET, or a POST when it answers POSTs): the
        # others keep their task rather than hopping between the two on each request.
        reactor = self.reactor
        give_back = reactor is not None
        back_after = (b"GET", b"HEAD", b"POST") if reactor and reactor.posts else (b"GET", b"HEAD")
        if unsent:
            self._answering(conn)
            await stream.send_all(unsent)
            if close:
                return False  # the client asked for nothing more
        self._arm(conn)
        while True:
            if not data:
                data = await stream.receive_some(65536)
                if not data:
                    return False  # peer closed (or half-closed): nothing more will arrive
            try:
                proto.receive_data(data)
            except ProtocolError as error:
                metrics.HTTP_LIMITS.labels(error.limit.value).inc()
                self._answering(conn)
                # Requests completed before the bad one are answered first, in order.
                if await self._answer(conn, stream, proto.take_all()):
                    await stream.send_all(error_bytes(error))
                return False
            data = b""
            waiting = proto.pending()
            if waiting == 0:
                if proto.continue_wanted:
                    # RFC 9110 section 10.1.1: the client waits for this before the body.
                    proto.continue_wanted = False
                    await stream.send_all(CONTINUE)
                self._arm(conn)
                continue
            self._answering(conn)
            if waiting == 1 and fast is not None:
                # The common case (one request per read, a CDN or stapling server
                # asking again): answered without a list, a join or the handler.
                request = proto.next_request()
                assert request is not None
                raw = fast(request) if request.keep_alive else None
                if raw is not None:
                    await stream.send_all(raw)
                    self._arm(conn)
                    if give_back and proto.phase is Phase.IDLE:
                        return True
                    continue
                # The fast path said no: the handler answers, and the fast path is
                # not asked a second time.
                last = request.method
                if not await self._answer(conn, stream, [request], fast_tried=True):
                    return False
            else:
                requests = proto.take_all()
                last = requests[-1].method
                if not await self._answer(conn, stream, requests):
                    return False
            self._arm(conn)
            if give_back and last in back_after and proto.phase is Phase.IDLE:
                return True

    async def _answer(
        self,
        conn: _Conn,
        stream: trio.abc.Stream,
        requests: list[Request],
        fast_tried: bool = False,
    ) -> bool:
        """Answer `requests` in order with one write; False when the connection must
        close afterwards (a request without keep-alive, or an upgrade request).
        `fast_tried`: the caller already asked the fast path about these."""
        if not requests:
            return True
        out = []
        open_after = True
        pause = 0.0
        fast = None if fast_tried else self.fast
        for request in requests:
            keep_alive = request.keep_alive
            raw = fast(request) if fast is not None and keep_alive else None
            if raw is None:
                response = await self._respond(request)
                pause = max(pause, response.pause)
                raw = serialize(response, keep_alive, request.http10)
            out.append(raw)
            if not keep_alive:
                open_after = False
                break
        await stream.send_all(out[0] if len(out) == 1 else b"".join(out))
        if pause and open_after:
            # The answer is out; the next request waits (see Response.pause). Idle
            # meanwhile, so the connection can be shed at the cap.
            self._arm(conn)
            await self.hold(pause)
        return open_after

    async def _respond(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except Exception:
            metrics.HTTP_INTERNAL_ERRORS.inc()
            self._log_internal_error()
            return plain(500, b"internal error")
