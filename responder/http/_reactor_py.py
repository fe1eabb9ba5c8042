"""The GET reactor's engine in pure Python: twin of the compiled ext/http_reactor.pyx.

The engine owns an epoll set of keep-alive connections that are between requests.
Each `poll` reads every ready connection once; when what arrived is nothing but
complete, plain GETs whose answers are in the host's answer arena
(responder/answers/arena.py), it writes the answers and keeps the connection.
Anything else (a miss, a POST, a partial request, a conditional GET, a header it
does not know to be harmless, a client that reads slowly) is handed back, untouched,
to the trio server, which has the full protocol and every deadline. So the
engine only ever has to be right about saying yes; saying no is always safe.

Both twins give identical answers and hand-offs for identical inputs (the differential
tests in tests/integration/test_reactor.py feed them the same bytes). The pure twin is
the reference and the fallback where the compiled module is not built.

The answer is rendered as the data plane renders a cacheable answer
(dataplane/app.py: ocsp_head and the Cache-Control line): Last-Modified is thisUpdate,
Expires nextUpdate, the ETag the hex SHA-256 of the DER, max-age runs to the refresh
time (at most the configured cap).
"""

import contextlib
import errno
import os
import select
import socket
from collections.abc import Callable

from ..answers.arena import Arena, Record
from .protocol import http_date

# (fd, bytes read but not answered, bytes of answers not yet sent, whether the
# connection closes once they are sent)
Handoff = tuple[int, bytes, bytes, bool]
# How a request wants its connection kept (RFC 9112 section 9.3): HTTP/1.1 keeps it
# unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`, which the
# answer then repeats. Stapling servers and `openssl ocsp` speak HTTP/1.0.
KEEP, KEEP_10, CLOSE = 0, 1, 2
_CONNECTION = (b"", b"Connection: keep-alive\r\n", b"Connection: close\r\n")
# The data plane's answer to a POST body (and the request's KEEP/KEEP_10/CLOSE),
# complete response bytes, when it can give one without waiting
# (dataplane/app.py: post_inline); None: the full path answers.
Post = Callable[[bytes, int], bytes | None]
# POSTs answered inline per poll: each costs about 80 µs with its signature, so 24
# keep the loop's other tasks (the change feed, the control plane) waiting about 2 ms,
# under the live-signing lag limit (live_sign_loop_lag_ms, 5) that would otherwise
# shed them; connections left over stay ready and are read at the next wake-up.
POST_BUDGET = 24

READ_SIZE = 65536
MAX_EVENTS = 256

_STATUS_LINE = b"HTTP/1.1 200 OK\r\nDate: "
_HEAD = b"\r\nContent-Type: application/ocsp-response\r\nLast-Modified: "
_TAIL = (
    b"Cache-Control: max-age=%d, public, no-transform, must-revalidate\r\nContent-Length: %d\r\n"
)
# RFC 9110 section 5.6.2: token characters, the only ones a field name may have.
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# RFC 3986 characters of a path and query (base64 GETs use A-Za-z0-9+/= and %XX).
_TARGET = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%"
)
# Field values: visible ASCII, space and tab (no obs-text, no controls).
_VALUE = frozenset(range(0x20, 0x7F)) | {0x09}
# Fields that change what the answer is or how the request is framed: a request that
# has one goes to the full path (conditionals need the 304 logic; framing fields are
# where request smuggling lives; Connection is checked separately).
_HANDOFF_FIELDS = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        b"te",
        b"trailer",
        b"if-none-match",
        b"if-modified-since",
        b"if-match",
        b"if-unmodified-since",
        b"if-range",
        b"range",
    }
)


def render(record: Record, date: bytes, now: int, cap: int, mode: int = KEEP) -> bytes:
    """The 200 for `record`: max-age runs to the refresh time, at most `cap` seconds
    when a cap is set; the Connection line `mode` asks for (as protocol.serialize)."""
    age = record.refresh_at - now
    if cap and age > cap:
        age = cap
    return b"".join(
        (
            _STATUS_LINE,
            date,
            _HEAD,
            http_date(record.this_update),
            b"\r\nExpires: ",
            http_date(record.next_update),
            b'\r\nETag: "',
            record.digest.hex().encode(),
            b'"\r\n',
            _TAIL % (age, len(record.der)),
            _CONNECTION[mode],
            b"\r\n",
            record.der,
        )
    )


class Reader:
    """Reads the arena for the engine (the compiled twin reads it in place)."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena

    def lookup(self, url: bytes, now: int, stale_ok: bool = False) -> Record | None:
        return self.arena.lookup(url, now, stale_ok)


def _header_ok(line: bytes, post: bool) -> int:
    """The bytes this field counts toward max_header_bytes (as protocol.Connection
    counts them: name + value + 4), or -1 if the field is not plainly harmless.
    `post`: Content-Length is allowed (the caller reads it)."""
    colon = line.find(b":")
    if colon <= 0:
        return -1
    name = line[:colon]
    if any(c not in _TCHAR for c in name):
        return -1
    value = line[colon + 1 :]
    if any(c not in _VALUE for c in value):
        return -1
    value = value.lstrip(b" \t")
    if value.endswith((b" ", b"\t")):
        return -1  # parsers differ on trailing whitespace; the full path decides
    lower = name.lower()
    if lower in _HANDOFF_FIELDS and not (post and lower == b"content-length"):
        return -1
    if lower == b"connection" and value.lower() not in (b"keep-alive", b"close"):
        return -1  # upgrade, or a list: the full path decides
    return len(name) + len(value) + 4


def _length(value: bytes, max_body_bytes: int) -> int:
    """A Content-Length the engine takes: 1 to max_body_bytes, plain digits, no leading
    zero; -1 otherwise (the full path decides, 413 included)."""
    if not value.isdigit() or value[:1] == b"0" or len(value) > 9:
        return -1
    n = int(value)
    return n if n <= max_body_bytes else -1


def parse(
    buf: bytes,
    max_header_bytes: int,
    max_pipelined: int,
    max_body_bytes: int = 0,
    post_targets: tuple[bytes, ...] = (),
) -> list[tuple[bool, bytes, int]] | None:
    """(is a POST, its target or body, KEEP/KEEP_10/CLOSE) for each request of `buf`
    when it is nothing but complete, plain HTTP/1.1 or 1.0 GETs, and POSTs to one of
    `post_targets` with a Content-Length body, a request that closes the connection
    coming last; None for anything else."""
    requests: list[tuple[bool, bytes, int]] = []
    pos = 0
    size = len(buf)
    while pos < size:
        if len(requests) >= max_pipelined or (requests and requests[-1][2] == CLOSE):
            return None
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            return None  # a partial request
        lines = buf[pos:end].split(b"\r\n")
        pos = end + 4
        request_line = lines[0]
        http10 = request_line.endswith(b" HTTP/1.0")
        if not http10 and not request_line.endswith(b" HTTP/1.1"):
            return None
        post = request_line.startswith(b"POST /")
        if not post and not request_line.startswith(b"GET /"):
            return None
        target = request_line[5 if post else 4 : -9]
        if any(c not in _TARGET for c in target):
            return None
        if post and target not in post_targets:
            return None
        counted = len(target)
        length = -1
        connection = None
        for line in lines[1:]:
            n = _header_ok(line, post)
            if n < 0:
                return None
            counted += n
            colon = line.find(b":")
            if line[:colon].lower() == b"connection":
                if connection is not None:
                    return None  # two of them: the full path decides
                connection = line[colon + 1 :].lstrip(b" \t").lower()
            if post and line[:colon].lower() == b"content-length":
                if length >= 0:
                    return None  # two of them: request smuggling's favourite
                length = _length(line[colon + 1 :].lstrip(b" \t"), max_body_bytes)
                if length < 0:
                    return None
        if counted > max_header_bytes:
            return None
        if http10:
            mode = KEEP_10 if connection == b"keep-alive" else CLOSE
        else:
            mode = CLOSE if connection == b"close" else KEEP
        if post:
            if length < 0 or pos + length > size:
                return None  # no length, or the body is not all here yet
            requests.append((True, buf[pos : pos + length], mode))
            pos += length
        else:
            requests.append((False, target, mode))
    return requests or None


def answer(
    buf: bytes,
    reader: Reader,
    post: Post | None,
    now: int,
    date: bytes,
    cap: int,
    max_header_bytes: int,
    max_pipelined: int,
    max_body_bytes: int,
    post_targets: tuple[bytes, ...],
    hits: list[int],
) -> tuple[bytes, bool] | None:
    """The answers to every request in `buf` and whether the connection closes after
    them, or None when any of them is not a plain GET with a fresh answer in the arena
    or a POST that `post` answers. `hits` counts GET answers per status and POSTs
    answered, only when everything was answered."""
    requests = parse(buf, max_header_bytes, max_pipelined, max_body_bytes, post_targets)
    if requests is None:
        return None
    out = []
    got = [0, 0, 0, 0]
    for is_post, data, mode in requests:
        if is_post:
            if post is None:
                return None
            answered = post(data, mode)
            if answered is None:
                return None
            got[3] += 1
            out.append(answered)
            continue
        record = reader.lookup(data, now)
        if record is None:
            return None
        got[record.status] += 1
        out.append(render(record, date, now, cap, mode))
    for i, n in enumerate(got):
        hits[i] += n
    return (out[0] if len(out) == 1 else b"".join(out)), requests[-1][2] == CLOSE


class Engine:
    """The connections the reactor holds between requests, and their epoll set."""

    def __init__(
        self,
        reader: Reader,
        post: Post | None,
        cap: int,
        max_header_bytes: int,
        max_pipelined: int,
        max_body_bytes: int = 0,
        post_targets: tuple[bytes, ...] = (),
    ) -> None:
        self.reader = reader
        self.post = post
        self.max_body_bytes = max_body_bytes
        self.post_targets = post_targets
        self.posts_left = POST_BUDGET
        self.cap = cap
        self.max_header_bytes = max_header_bytes
        self.max_pipelined = max_pipelined
        self._epoll = select.epoll()
        self._last: dict[int, float] = {}  # fd -> when it was last active (monotonic)
        self.hits = [0, 0, 0, 0]
        self.closed = 0  # connections closed since the last take_counts (peer gone)
        self.post_errors = 0

    def fileno(self) -> int:
        return self._epoll.fileno()

    @property
    def connections(self) -> int:
        return len(self._last)

    def add(self, fd: int, now: float) -> None:
        """Take a non-blocking connection between requests."""
        self._epoll.register(fd, select.EPOLLIN)
        self._last[fd] = now

    def accept(self, listener: socket.socket, limit: int, now: float) -> tuple[int, int]:
        """Accept up to `limit` queued connections from `listener` straight into the
        epoll set: (how many, 0 or the errno that stopped it; EAGAIN when the queue is
        empty)."""
        n = 0
        while n < limit:
            try:
                conn, _ = listener.accept()
            except OSError as exc:
                return n, exc.errno or errno.EIO
            conn.setblocking(False)
            # Nagle would hold back an answer written in pieces; a Unix socket refuses
            # the option, which is harmless.
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            fd = conn.detach()
            try:
                self.add(fd, now)
            except OSError as exc:
                os.close(fd)  # the epoll set is full (max_user_watches) or memory is short
                return n, exc.errno or errno.EIO
            n += 1
        return n, 0

    def take_counts(self) -> tuple[int, int, int, int, int, int]:
        """GET hits per status, POSTs answered, connections closed and POST answers
        that failed (a bug; the full path answered them) since the last call."""
        good, revoked, unknown, posts = self.hits
        counts = (good, revoked, unknown, posts, self.closed, self.post_errors)
        self.hits = [0, 0, 0, 0]
        self.closed = 0
        self.post_errors = 0
        return counts

    def _post(self, body: bytes, mode: int) -> bytes | None:
        assert self.post is not None
        self.posts_left -= 1
        try:
            return self.post(body, mode)
        except Exception:
            # The full path will meet the same fault and log it with its traceback.
            self.post_errors += 1
            return None

    def _close(self, fd: int) -> None:
        self._last.pop(fd, None)
        os.close(fd)  # also leaves the epoll set
        self.closed += 1

    def _release(self, fd: int) -> None:
        self._epoll.unregister(fd)
        del self._last[fd]

    def poll(self, now: float, wall: int, date: bytes) -> list[Handoff]:
        """Serve what is ready; the connections that need the full path."""
        handoffs: list[Handoff] = []
        self.posts_left = POST_BUDGET
        post = self._post if self.post is not None else None
        for fd, _ in self._epoll.poll(0, MAX_EVENTS):
            if self.posts_left <= 0:
                break  # the rest stay ready: read at the next wake-up
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                self._close(fd)
                continue
            if not data:
                self._close(fd)  # the peer closed
                continue
            done = None
            if len(data) < READ_SIZE:
                done = answer(
                    data,
                    self.reader,
                    post,
                    wall,
                    date,
                    self.cap,
                    self.max_header_bytes,
                    self.max_pipelined,
                    self.max_body_bytes,
                    self.post_targets,
                    self.hits,
                )
            if done is None:
                self._release(fd)
                handoffs.append((fd, data, b"", False))
                continue
            out, close = done
            try:
                sent = os.write(fd, out)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._close(fd)  # reset, or gone: nothing more to send it
                continue
            if sent < len(out):
                # A client that does not read its answers: the trio server sends the
                # rest under its send deadline.
                self._release(fd)
                handoffs.append((fd, b"", out[sent:], close))
                continue
            if close:
                self._close(fd)  # answered, and asked for no more
                continue
            self._last[fd] = now
        return handoffs

    def expire(self, before: float) -> int:
        """Close connections idle since before `before`; how many."""
        old = [fd for fd, last in self._last.items() if last < before]
        for fd in old:
            self._close(fd)
        self.closed -= len(old)  # counted by the caller as idle closes, not peer closes
        return len(old)

    def evict(self) -> bool:
        """Close the connection idle the longest (to make room at max_connections)."""
        if not self._last:
            return False
        fd = min(self._last, key=self._last.__getitem__)
        self._close(fd)
        self.closed -= 1
        return True

    def close(self) -> None:
        for fd in list(self._last):
            self._close(fd)
        self._epoll.close()
