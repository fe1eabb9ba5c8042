"""HTTP/1.0 and 1.1 as a protocol with no I/O: bytes in, requests or one typed error out.

The shape is h11's: a `Connection` is fed the bytes that arrived (`receive_data`) and
hands back complete requests (`next_request`); responses are serialised to bytes in one
place (`serialize`). Nothing here touches a socket, a clock or trio, so every limit
and every hostile input is tested with plain byte strings.

The only exception `receive_data` raises is `ProtocolError`, whose `status_hint` is
the status the client gets and whose `limit` names what it ran into (the label of
`revocd_http_limit_hits_total`). Every failure mode of the underlying parser
(httptools, i.e. llhttp) is mapped to it here, so a caller that handles
`ProtocolError` has handled everything the client can cause. That is the fault
boundary's first half; the second is the server's per-connection handler, which
answers 500 for anything else (our bugs) and keeps serving other connections.
"""

import time
from dataclasses import dataclass
from enum import Enum, StrEnum

import httptools

# RFC 9110 section 15: the reason phrases of the statuses revocd sends.
REASONS = {
    100: b"Continue",
    200: b"OK",
    304: b"Not Modified",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    417: b"Expectation Failed",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}

# Methods the data plane serves; a CONNECT or anything else gets 405 with this Allow.
ALLOWED_METHODS = b"GET, HEAD, POST"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may send. The defaults are the ones `revocd serve` uses
    unless `[server.limits]` says otherwise (responder/config.py reads them from here)."""

    # An OCSP GET is a few hundred bytes of base64; 8 KiB leaves room for CDN headers.
    max_header_bytes: int = 8 * 1024
    # An OCSP request with 100 CertIDs and a 128-octet nonce is under 8 KiB.
    max_body_bytes: int = 10 * 1024
    # From the first byte of a request to its last header: not reset by each byte that
    # arrives, so a client trickling one byte a second is cut off all the same.
    header_timeout: float = 10.0
    # From the last header to the last body byte (bodies are at most max_body_bytes).
    body_timeout: float = 10.0
    # Time to compute an answer and hand it to a client that reads slowly.
    send_timeout: float = 10.0
    # A kept-alive connection with no request under way.
    idle_timeout: float = 30.0
    max_connections: int = 16_384
    # Complete requests answered from one read; more in one read is a 400 (a client
    # that pipelines that deep is a flood, not a stapling server).
    max_pipelined: int = 64


class Limit(StrEnum):
    """What a request ran into: the `limit` label of revocd_http_limit_hits_total."""

    HEADER_BYTES = "header_bytes"
    BODY_BYTES = "body_bytes"
    PIPELINED = "pipelined"
    MALFORMED = "malformed_http"
    METHOD = "method"
    UPGRADE = "upgrade"
    EXPECTATION = "expectation"
    VERSION = "http_version"


class ProtocolError(Exception):
    """The client broke the protocol or a limit: answer `status_hint` and close."""

    def __init__(self, message: str, status_hint: int, limit: Limit) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint
        self.limit = limit


@dataclass(slots=True)
class Request:
    method: bytes
    target: bytes
    headers: dict[bytes, bytes]  # names lower-cased; a repeated name keeps its last value
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
    # Seconds before the server reads this connection's next request (load shedding:
    # a client told tryLater that retries at once waits here, not in the run queue)
    pause: float = 0.0


_DAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS = b" Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(b" ")


def http_date(seconds: int) -> bytes:
    """IMF-fixdate (RFC 9110 section 5.6.7), e.g. Sun, 22 Nov 2026 10:00:00 GMT."""
    t = time.gmtime(seconds)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday],
        t.tm_mday,
        _MONTHS[t.tm_mon],
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


class DateCache:
    """The Date header value of the current second, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def now(self, seconds: float | None = None) -> bytes:
        second = int(time.time() if seconds is None else seconds)
        if second != self._second:
            self._second = second
            self._value = http_date(second)
        return self._value


date_header = DateCache()

_STATUS_LINES = {
    code: b"HTTP/1.1 %d %s\r\nDate: " % (code, reason) for code, reason in REASONS.items()
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def serialize(response: Response, keep_alive: bool, http10: bool) -> bytes:
    """The bytes of one response. RFC 9110 section 15.4.5: a 304 carries no body and no
    Content-Length (the length would be the one of the body it stands for)."""
    status_line = _STATUS_LINES.get(response.status) or b"HTTP/1.1 %d Unknown\r\nDate: " % (
        response.status
    )
    lines = [status_line, date_header.now(), b"\r\n", response.raw_headers]
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


def plain(status: int, text: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> Response:
    """A short text answer that no cache may keep."""
    headers = [(b"Content-Type", b"text/plain"), (b"Cache-Control", b"no-store"), *(extra or [])]
    return Response(status, headers, text + b"\n")


def error_bytes(error: ProtocolError) -> bytes:
    """What a client that caused `error` gets before the connection closes."""
    extra = [(b"Allow", ALLOWED_METHODS)] if error.status_hint == 405 else None
    return serialize(plain(error.status_hint, error.message.encode(), extra), False, False)


class _LimitHit(Exception):
    """Raised inside an httptools callback; httptools wraps it in HttpParserCallbackError
    and `receive_data` unwraps it."""

    def __init__(self, error: ProtocolError) -> None:
        self.error = error


class Phase(Enum):
    """Where a connection is in its current request; the server picks deadlines by it."""

    IDLE = "idle"  # no byte of a request yet
    HEADERS = "headers"  # first byte seen, headers not complete
    BODY = "body"  # headers complete, body still arriving


class Connection:
    """One client connection's parser state.

    Feed it with `receive_data`, then take `next_request()` until it returns None.
    After a `ProtocolError` the connection is finished: answer the requests already
    complete, then the error, then close.
    """

    __slots__ = (
        "_body",
        "_body_bytes",
        "_done",
        "_header_bytes",
        "_headers",
        "_parser",
        "_url",
        "closing",
        "continue_wanted",
        "limits",
        "phase",
        "received",
    )

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self._done: list[Request] = []
        self.phase = Phase.IDLE
        # bytes of the request under way (0 when idle): the shedding order reads it
        self.received = 0
        # True once a request asked for `100 Continue` and has not been told yet
        self.continue_wanted = False
        # Set when the last complete request must be the connection's last (an upgrade
        # request: what follows it on the wire may be another protocol).
        self.closing = False
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0

    # --- the public side -------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> None:
        """Parse `data`; complete requests queue up for `next_request`.

        Raises ProtocolError and nothing else for anything a client can send."""
        if self.closing:
            return  # after an upgrade request nothing more is read as HTTP
        if self.phase is Phase.IDLE and data:
            self.phase = Phase.HEADERS
        self.received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            hit = exc.__context__
            if isinstance(hit, _LimitHit):
                raise hit.error from None
            raise ProtocolError("malformed HTTP", 400, Limit.MALFORMED) from None
        except httptools.HttpParserInvalidMethodError:
            raise ProtocolError("invalid method", 400, Limit.MALFORMED) from None
        except httptools.HttpParserUpgrade:
            self._upgrade()
        except httptools.HttpParserError:
            raise ProtocolError("malformed HTTP", 400, Limit.MALFORMED) from None
        if len(self._done) > self.limits.max_pipelined:
            self._done.clear()
            raise ProtocolError("too many pipelined requests", 400, Limit.PIPELINED)

    def next_request(self) -> Request | None:
        if not self._done:
            return None
        return self._done.pop(0)

    def pending(self) -> int:
        return len(self._done)

    def take_all(self) -> list[Request]:
        done, self._done = self._done, []
        return done

    # --- upgrades ------------------------------------------------------------------

    def _upgrade(self) -> None:
        """llhttp stops at the end of the headers of a CONNECT or of a request carrying
        `Connection: upgrade` (h2c, websocket), and treats what follows as the new
        protocol, which revocd does not speak.

        RFC 9110 section 7.8 lets a server ignore Upgrade: a GET or HEAD asking for h2c
        or websocket is answered over HTTP/1.1 as if it had not asked (curl --http2 does
        this on every http:// URL), then the connection closes. A CONNECT gets 405 with
        Allow; an upgrade request with a body gets 400 (llhttp did not read the body,
        and guessing where it ends is how request smuggling starts)."""
        request = self._done[-1] if self._done else None
        if request is None or request.method == b"CONNECT":
            self._done = self._done[:-1]
            raise ProtocolError("CONNECT is not supported", 405, Limit.METHOD)
        length = request.headers.get(b"content-length", b"0").strip()
        if request.method not in (b"GET", b"HEAD") or (
            length != b"0" or b"transfer-encoding" in request.headers
        ):
            self._done.pop()
            raise ProtocolError("protocol upgrade is not supported", 400, Limit.UPGRADE)
        request.keep_alive = False
        self.closing = True

    # --- httptools callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        self.phase = Phase.HEADERS
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
            raise _LimitHit(ProtocolError("header fields too large", 431, Limit.HEADER_BYTES))

    def on_headers_complete(self) -> None:
        self.phase = Phase.BODY
        parser = self._parser
        version = parser.get_http_version()
        if version not in ("1.0", "1.1"):
            raise _LimitHit(ProtocolError("HTTP version not supported", 505, Limit.VERSION))
        length = self._headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            raise _LimitHit(ProtocolError("request body too large", 413, Limit.BODY_BYTES))
        expect = self._headers.get(b"expect")
        if expect is not None and version == "1.1":
            # RFC 9110 section 10.1.1: 100-continue is the only expectation defined.
            if expect.strip().lower() != b"100-continue":
                raise _LimitHit(ProtocolError("unsupported expectation", 417, Limit.EXPECTATION))
            if length is not None and length.strip() not in (b"", b"0"):
                self.continue_wanted = True

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body_bytes:
            raise _LimitHit(ProtocolError("request body too large", 413, Limit.BODY_BYTES))
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        self._done.append(
            Request(
                method=parser.get_method(),
                target=self._url,
                headers=self._headers,
                body=b"".join(self._body),
                keep_alive=parser.should_keep_alive(),
                http10=parser.get_http_version() == "1.0",
            )
        )
        self.phase = Phase.IDLE
        self.received = 0
        self.continue_wanted = False
