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

import os
import select

from ..answers.arena import Arena, Record
from .protocol import http_date

# (fd, bytes read but not answered, bytes of answers not yet sent)
Handoff = tuple[int, bytes, bytes]

STATUS_NAMES = ("good", "revoked", "unknown")
READ_SIZE = 65536
MAX_EVENTS = 256

_STATUS_LINE = b"HTTP/1.1 200 OK\r\nDate: "
_HEAD = b"\r\nContent-Type: application/ocsp-response\r\nLast-Modified: "
_TAIL = (
    b"Cache-Control: max-age=%d, public, no-transform, must-revalidate\r\n"
    b"Content-Length: %d\r\n\r\n"
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


def render(record: Record, date: bytes, now: int, cap: int) -> bytes:
    """The 200 for `record`: max-age runs to the refresh time, at most `cap` seconds
    when a cap is set."""
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
            record.der,
        )
    )


class Reader:
    """Reads the arena for the engine (the compiled twin reads it in place)."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena

    def lookup(self, url: bytes, now: int, stale_ok: bool = False) -> Record | None:
        return self.arena.lookup(url, now, stale_ok)


def _header_ok(line: bytes) -> int:
    """The bytes this field counts toward max_header_bytes (as protocol.Connection
    counts them: name + value + 4), or -1 if the field is not plainly harmless."""
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
    if lower in _HANDOFF_FIELDS:
        return -1
    if lower == b"connection" and value.lower() != b"keep-alive":
        return -1  # close, upgrade, or a list: the full path decides
    return len(name) + len(value) + 4


def parse(buf: bytes, max_header_bytes: int, max_pipelined: int) -> list[bytes] | None:
    """The targets of `buf` when it is nothing but complete, plain HTTP/1.1 GETs that
    keep the connection open; None for anything else."""
    targets: list[bytes] = []
    pos = 0
    size = len(buf)
    while pos < size:
        if len(targets) >= max_pipelined:
            return None
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            return None  # a partial request
        lines = buf[pos:end].split(b"\r\n")
        pos = end + 4
        request_line = lines[0]
        if not request_line.startswith(b"GET /") or not request_line.endswith(b" HTTP/1.1"):
            return None
        target = request_line[4:-9]
        if any(c not in _TARGET for c in target):
            return None
        counted = len(target)
        for line in lines[1:]:
            n = _header_ok(line)
            if n < 0:
                return None
            counted += n
        if counted > max_header_bytes:
            return None
        targets.append(target)
    return targets or None


def answer(
    buf: bytes,
    reader: Reader,
    now: int,
    date: bytes,
    cap: int,
    max_header_bytes: int,
    max_pipelined: int,
    hits: list[int],
) -> bytes | None:
    """The answers to every request in `buf`, or None when any of them is not a plain
    GET with a fresh answer in the arena. `hits` is incremented per status only when
    answered."""
    targets = parse(buf, max_header_bytes, max_pipelined)
    if targets is None:
        return None
    records = []
    for target in targets:
        record = reader.lookup(target, now)
        if record is None:
            return None
        records.append(record)
    for record in records:
        hits[record.status] += 1
    if len(records) == 1:
        return render(records[0], date, now, cap)
    return b"".join(render(record, date, now, cap) for record in records)


class Engine:
    """The connections the reactor holds between requests, and their epoll set."""

    def __init__(self, reader: Reader, cap: int, max_header_bytes: int, max_pipelined: int) -> None:
        self.reader = reader
        self.cap = cap
        self.max_header_bytes = max_header_bytes
        self.max_pipelined = max_pipelined
        self._epoll = select.epoll()
        self._last: dict[int, float] = {}  # fd -> when it was last active (monotonic)
        self.hits = [0, 0, 0]
        self.closed = 0  # connections closed since the last take_counts (peer gone)

    def fileno(self) -> int:
        return self._epoll.fileno()

    @property
    def connections(self) -> int:
        return len(self._last)

    def add(self, fd: int, now: float) -> None:
        """Take a non-blocking connection between requests."""
        self._epoll.register(fd, select.EPOLLIN)
        self._last[fd] = now

    def take_counts(self) -> tuple[int, int, int, int]:
        """Hits per status and connections closed since the last call."""
        good, revoked, unknown = self.hits
        counts = (good, revoked, unknown, self.closed)
        self.hits = [0, 0, 0]
        self.closed = 0
        return counts

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
        for fd, _ in self._epoll.poll(0, MAX_EVENTS):
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
            out = None
            if len(data) < READ_SIZE:
                out = answer(
                    data,
                    self.reader,
                    wall,
                    date,
                    self.cap,
                    self.max_header_bytes,
                    self.max_pipelined,
                    self.hits,
                )
            if out is None:
                self._release(fd)
                handoffs.append((fd, data, b""))
                continue
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
                handoffs.append((fd, b"", out[sent:]))
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
