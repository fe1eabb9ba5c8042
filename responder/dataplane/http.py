"""HTTP/1.0 and 1.1 over trio sockets, parsed by httptools (llhttp).

Small and strict, for a public port: keep-alive, pipelined requests answered in
order, and limits on header bytes, body bytes, header read time, idle time and
connection count. Each limit hit is counted and ends in a clean close or a 4xx;
nothing a client sends can crash the server.
"""

import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate

import httptools
import trio

from .. import metrics

log = logging.getLogger("revocd.dataplane")


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 8 * 1024
    max_body_bytes: int = 10 * 1024
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_connections: int = 16_384
    max_pipelined: int = 64


@dataclass(slots=True)
class Request:
    method: bytes
    target: bytes
    headers: dict[bytes, bytes]
    body: bytes
    keep_alive: bool
    http10: bool


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    head_only: bool = False
    raw_headers: bytes = b""  # preformatted header lines, each ending in CRLF


Handler = Callable[[Request], Awaitable[Response]]

REASONS = {
    200: b"OK",
    304: b"Not Modified",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}


class _DateCache:
    """IMF-fixdate of the current second, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._value = formatdate(second, usegmt=True).encode()
        return self._value


http_date = _DateCache()


_STATUS_LINES = {
    code: b"HTTP/1.1 %d %s\r\nDate: " % (code, reason) for code, reason in REASONS.items()
}


def serialize(response: Response, keep_alive: bool, http10: bool) -> bytes:
    status_line = _STATUS_LINES.get(response.status) or b"HTTP/1.1 %d Unknown\r\nDate: " % (
        response.status
    )
    lines = [status_line, http_date.now(), b"\r\n", response.raw_headers]
    for name, value in response.headers:
        lines.append(name + b": " + value + b"\r\n")
    if response.status != 304:
        lines.append(b"Content-Length: %d\r\n" % len(response.body))
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    elif http10:
        lines.append(b"Connection: keep-alive\r\n")
    lines.append(b"\r\n")
    if response.status != 304 and not response.head_only:
        lines.append(response.body)
    return b"".join(lines)


def _simple(status: int, text: bytes) -> Response:
    return Response(
        status, [(b"Content-Type", b"text/plain"), (b"Cache-Control", b"no-store")], text + b"\n"
    )


class _LimitHit(Exception):
    def __init__(self, limit: str, status: int) -> None:
        self.limit = limit
        self.status = status


class _Parser:
    """httptools callbacks, collecting complete requests in order."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.parser = httptools.HttpRequestParser(self)
        self.done: list[Request] = []
        self.in_progress = False
        self.pending_error: BaseException | None = None
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0

    def on_message_begin(self) -> None:
        self.in_progress = True
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        self._headers[name.lower()] = value

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.limits.max_header_bytes:
            raise _LimitHit("header_bytes", 431)

    def on_headers_complete(self) -> None:
        length = self._headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            raise _LimitHit("body_bytes", 413)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body_bytes:
            raise _LimitHit("body_bytes", 413)
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.in_progress = False
        version = self.parser.get_http_version()
        self.done.append(
            Request(
                method=self.parser.get_method(),
                target=self._url,
                headers=self._headers,
                body=b"".join(self._body),
                keep_alive=self.parser.should_keep_alive(),
                http10=version == "1.0",
            )
        )
        if len(self.done) > self.limits.max_pipelined:
            raise _LimitHit("pipelined", 400)


Fast = Callable[[Request], bytes | None]


class _Conn:
    """Per-connection bookkeeping the deadline sweeper reads."""

    __slots__ = ("deadline", "scope", "state")

    def __init__(self, scope: trio.CancelScope, state: _Parser, deadline: float) -> None:
        self.scope = scope
        self.state = state
        self.deadline = deadline


class HttpServer:
    """Serves one handler on trio listeners.

    `fast`, when given, is tried first for every request and may return the complete
    response bytes (cache hits); otherwise the async `handler` answers. Timeouts are
    enforced by one sweeper task rather than a deadline per read, which keeps the
    per-request path free of cancel-scope bookkeeping.
    """

    SWEEP_INTERVAL = 0.25

    def __init__(
        self, handler: Handler, limits: Limits | None = None, fast: Fast | None = None
    ) -> None:
        self.handler = handler
        self.fast = fast
        self.limits = limits or Limits()
        self.connections = 0
        self._conns: set[_Conn] = set()

    async def serve(
        self,
        listeners: list[trio.SocketListener],
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sweep)
            await nursery.start(trio.serve_listeners, self._connection, listeners)
            task_status.started(listeners)

    async def _sweep(self) -> None:
        while True:
            await trio.sleep(self.SWEEP_INTERVAL)
            now = time.monotonic()
            for conn in list(self._conns):
                if now > conn.deadline:
                    conn.scope.cancel()

    async def _connection(self, stream: trio.SocketStream) -> None:
        if self.connections >= self.limits.max_connections:
            metrics.HTTP_LIMITS.labels("max_connections").inc()
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(
                    serialize(_simple(503, b"too many connections"), False, False)
                )
            return
        self.connections += 1
        metrics.HTTP_CONNECTIONS.inc()
        try:
            await self._serve_connection(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the peer went away; nothing to answer
        finally:
            # serve_listeners closes the stream when this handler returns
            self.connections -= 1
            metrics.HTTP_CONNECTIONS.dec()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        state = _Parser(self.limits)
        limits = self.limits
        monotonic = time.monotonic
        fast = self.fast
        with trio.CancelScope() as scope:
            conn = _Conn(scope, state, monotonic() + limits.idle_timeout)
            self._conns.add(conn)
            try:
                while True:
                    # Idle between requests, or a bounded wait for a request that has begun.
                    conn.deadline = monotonic() + (
                        limits.header_timeout if state.in_progress else limits.idle_timeout
                    )
                    data = await stream.receive_some(65536)
                    if not data:
                        return  # peer closed (or half-closed): nothing more will arrive
                    # Answering (and a client slow to read the answer) is bounded too.
                    conn.deadline = monotonic() + limits.idle_timeout
                    if fast is not None:
                        # Hot path: parse, and when every complete request is a cache hit,
                        # answer without leaving this loop.
                        try:
                            state.parser.feed_data(data)
                        except httptools.HttpParserError:
                            state.pending_error = sys.exc_info()[1]
                        else:
                            done = state.done
                            if len(done) == 1 and done[0].keep_alive:
                                raw = fast(done[0])
                                if raw is not None:
                                    done.clear()
                                    await stream.send_all(raw)
                                    continue
                            if not done:
                                continue
                    if not await self._feed(stream, state, data):
                        return
            finally:
                self._conns.discard(conn)
        if scope.cancelled_caught:
            metrics.HTTP_LIMITS.labels("header_timeout" if state.in_progress else "idle").inc()
            if state.in_progress:
                with trio.move_on_after(1):
                    await stream.send_all(serialize(_simple(408, b"request timeout"), False, False))

    async def _feed(self, stream: trio.SocketStream, state: "_Parser", data: bytes) -> bool:
        """Parse what arrived (unless the hot path did) and answer what is complete;
        False when the connection ends."""
        try:
            if self.fast is None:
                state.parser.feed_data(data)
            elif state.pending_error is not None:
                error, state.pending_error = state.pending_error, None
                raise error
        except httptools.HttpParserCallbackError as exc:
            hit = exc.__context__
            if isinstance(hit, _LimitHit):
                metrics.HTTP_LIMITS.labels(hit.limit).inc()
                if await self._flush(stream, state, keep_alive=True):
                    await stream.send_all(
                        serialize(_simple(hit.status, hit.limit.encode()), False, False)
                    )
                return False
            raise
        except httptools.HttpParserInvalidMethodError:
            await self._bad_request(stream, state, b"invalid method")
            return False
        except httptools.HttpParserUpgrade:
            await self._bad_request(stream, state, b"upgrade not supported")
            return False
        except httptools.HttpParserError:
            await self._bad_request(stream, state, b"malformed HTTP")
            return False
        if not state.done:
            return True
        return await self._flush(stream, state, keep_alive=True)

    async def _bad_request(self, stream: trio.SocketStream, state: _Parser, text: bytes) -> None:
        metrics.HTTP_LIMITS.labels("malformed_http").inc()
        if await self._flush(stream, state, keep_alive=True):
            await stream.send_all(serialize(_simple(400, text), False, False))

    async def _flush(self, stream: trio.SocketStream, state: _Parser, keep_alive: bool) -> bool:
        """Answer every complete request in order; False when the connection must close."""
        if not state.done:
            return True
        out = []
        open_after = keep_alive
        fast = self.fast
        for request in state.done:
            ka = request.keep_alive and open_after
            raw = fast(request) if fast is not None and ka else None
            if raw is None:
                try:
                    response = await self.handler(request)
                except Exception:
                    log.exception("handler failed")
                    response = _simple(500, b"internal error")
                raw = serialize(response, ka, request.http10)
            out.append(raw)
            if not ka:
                open_after = False
                break
        state.done.clear()
        await stream.send_all(out[0] if len(out) == 1 else b"".join(out))
        return open_after
