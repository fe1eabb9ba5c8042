"""The GET reactor (responder/http/reactor.py, ext/http_reactor.pyx and its twin) and
the compiled reader of the shared answer arena.

Three layers:
- differential: the compiled engine and the pure twin decide and render identically
  on generated and mutated requests, reading the same arena, and whatever they agree
  to answer is, for the full protocol module, nothing but plain keep-alive GETs for
  those same targets (the reactor may only ever be right about saying yes); the
  compiled arena reader agrees with Arena.lookup on every record, dead or alive;
- the engine on real socket pairs (both twins): hits, hand-offs with the bytes read,
  clients that do not read, peers that close, idle expiry, eviction;
- HttpServer with a reactor on a real TCP listener: misses go to the handler and the
  connection comes back, POSTs stay with trio, slow clients still get their 408,
  the cap still holds.
"""

import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responder.answers.arena import Arena
from responder.http import _reactor_py
from responder.http.protocol import Connection, Limits, ProtocolError, Request, Response
from responder.http.reactor import REACTOR_COMPILED, ArenaReader, Reactor
from responder.http.server import HttpServer

from .test_http_protocol import mutated

pytestmark = pytest.mark.skipif(
    not REACTOR_COMPILED, reason="compiled reactor not built (REVOCD_PURE_PYTHON=1?)"
)

if REACTOR_COMPILED:
    from responder.http import _reactor_fast  # type: ignore[attr-defined]

    TWINS: list[ModuleType] = [_reactor_py, _reactor_fast]
else:  # pragma: no cover - the module is skipped
    TWINS = [_reactor_py]

DATE = b"Tue, 01 Dec 2026 12:00:00 GMT"
NOW = 1_796_126_400
DER = b"\x30\x03\x0a\x01\x00"
TWIN_IDS = {_reactor_py: "pure"}
if REACTOR_COMPILED:
    TWIN_IDS[_reactor_fast] = "compiled"


def twin_id(module: ModuleType) -> str:
    return TWIN_IDS[module]


def fill(arena: Arena, url: bytes, der: bytes = DER, ttl: int = 3600, status: int = 0) -> None:
    serial = int.from_bytes(url, "big") & 0xFFFFFFFF
    assert arena.put(url, arena.snapshot(serial), der, NOW - 60, NOW + 86400, NOW + ttl, status)


@pytest.fixture(scope="module")
def arena() -> Iterator[Arena]:
    """/a good, /rev revoked, /old past its refresh time, /filled unknown with a
    longer DER; the owner beating at NOW."""
    with tempfile.TemporaryDirectory() as tmp:
        made = Arena.create(Path(tmp) / "answers.arena", 1 << 20)
        made.beat(NOW)
        fill(made, b"/a")
        fill(made, b"/rev", status=1)
        fill(made, b"/old", ttl=0)
        fill(made, b"/filled", der=b"\x30" * 300, status=2)
        yield made
        made.close()


def readers(arena: Arena) -> dict[ModuleType, object]:
    return {twin: twin.Reader(arena) for twin in TWINS}


# --- request generator ---------------------------------------------------------------

TARGETS = st.one_of(
    st.sampled_from([b"/a", b"/rev", b"/old", b"/filled", b"/missing", b"/", b"/a?x=1"]),
    st.binary(max_size=12).map(lambda b: b"/" + b),
)
NAMES = st.sampled_from(
    [
        b"Host",
        b"host",
        b"Connection",
        b"User-Agent",
        b"If-None-Match",
        b"if-modified-since",
        b"Content-Length",
        b"Transfer-Encoding",
        b"Upgrade",
        b"Expect",
        b"Range",
        b"X-Forwarded-For",
        b"Bad Name",
        b"",
        b"A\x00",
    ]
)
VALUES = st.sampled_from(
    [
        b"example.test",
        b"keep-alive",
        b"Keep-Alive",
        b"close",
        b"upgrade",
        b"",
        b"0",
        b"5",
        b"chunked",
        b"a b",
        b"trailing ",
        b"\tx",
        b"\x7f",
        b"caf\xc3\xa9",
        b"x\ny",
    ]
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(1, 3))):
        method = draw(st.sampled_from([b"GET", b"GET", b"GET", b"HEAD", b"POST", b"get"]))
        version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0"]))
        eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"]))
        lines = [method + b" " + draw(TARGETS) + b" " + version]
        for _ in range(draw(st.integers(0, 4))):
            sep = draw(st.sampled_from([b": ", b":", b":  ", b" : "]))
            lines.append(draw(NAMES) + sep + draw(VALUES))
        out += eol.join(lines) + eol + eol
    if draw(st.booleans()):
        out += draw(st.sampled_from([b"", b"GET /a HTTP/1.1\r\n", b"\r\n", b"x"]))
    return out


POST_TARGETS = (b"/ocsp", b"/ocsp/")
BODY_LIMIT = 64


def post_answer(body: bytes, mode: int) -> bytes | None:
    """A stand-in for the data plane's inline POST answer: some bodies it answers,
    some it leaves to the full path."""
    if body.startswith(b"x"):
        return None
    return b"HTTP/1.1 200 OK\r\nMode: %d\r\nContent-Length: %d\r\n\r\n" % (mode, len(body)) + body


@st.composite
def posts(draw: st.DrawFn) -> bytes:
    """POSTs, mostly well-formed, with the framing variations that matter."""
    out = b""
    for _ in range(draw(st.integers(1, 3))):
        body = draw(st.binary(max_size=70))
        target = draw(st.sampled_from([b"/ocsp"] * 4 + [b"/ocsp/", b"/", b"/ocsp?x", b"/other"]))
        out += b"POST " + target + b" HTTP/1.1\r\n"
        length = draw(
            st.sampled_from(
                [b"%d" % len(body)] * 8
                + [b"0%d" % len(body), b"%d" % (len(body) + 1), b"", b"-1", b"1e2", None]
            )
        )
        if length is not None:
            out += b"Content-Length: " + length + b"\r\n"
        if draw(st.integers(0, 5)) == 0:
            out += draw(
                st.sampled_from(
                    [
                        b"Content-Length: %d\r\n" % len(body),
                        b"Transfer-Encoding: chunked\r\n",
                        b"Expect: 100-continue\r\n",
                        b"Content-Type: application/ocsp-request\r\n",
                        b"Connection: close\r\n",
                    ]
                )
            )
        out += b"Host: x\r\n\r\n" + body
        if draw(st.integers(0, 3)) == 0:
            out += b"GET /a HTTP/1.1\r\n\r\n"
    if draw(st.integers(0, 5)) == 0:
        out = out[: draw(st.integers(0, len(out)))]  # cut short: a partial body or head
    return out


@st.composite
def plain_gets(draw: st.DrawFn) -> bytes:
    """Mostly what the engine answers, so that the yes side is exercised as much as the
    no side (requests() and mutated() are refused almost always)."""
    out = b""
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from([b"/a", b"/rev", b"/filled", b"/a%2Fb+c=", b"/missing"]))
        out += b"GET " + target + b" HTTP/1.1\r\n"
        for _ in range(draw(st.integers(0, 3))):
            name = draw(st.sampled_from([b"Host", b"User-Agent", b"Accept", b"connection"]))
            value = draw(st.sampled_from([b"keep-alive", b"x", b"", b"a b", b"ocsp/1.0"]))
            out += name + draw(st.sampled_from([b": ", b":", b":\t"])) + value + b"\r\n"
        out += b"\r\n"
    return out


INPUTS = st.one_of(requests(), plain_gets(), plain_gets(), posts(), posts(), mutated())
HEADER_LIMITS = st.sampled_from([8192, 8192, 64, 40, 20])
PIPELINE_LIMITS = st.sampled_from([64, 64, 2, 1])


# --- differential ----------------------------------------------------------------------


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=INPUTS, max_header=HEADER_LIMITS, max_pipelined=PIPELINE_LIMITS)
def test_compiled_and_pure_engines_decide_and_render_the_same(
    arena: Arena, data: bytes, max_header: int, max_pipelined: int
) -> None:
    args = (max_header, max_pipelined, BODY_LIMIT, POST_TARGETS)
    assert _reactor_fast.parse(data, *args) == _reactor_py.parse(data, *args)
    outcomes = []
    for twin, reader in readers(arena).items():
        for post in (post_answer, None):
            hits = [0, 0, 0, 0]
            out = twin.answer(data, reader, post, NOW, DATE, 0, *args, hits)
            outcomes.append((out, hits))
    assert outcomes[:2] == outcomes[2:]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(INPUTS, HEADER_LIMITS, PIPELINE_LIMITS)
def test_what_the_engine_answers_the_protocol_reads_as_plain_keep_alive_requests(
    data: bytes, max_header: int, max_pipelined: int
) -> None:
    parsed = _reactor_py.parse(data, max_header, max_pipelined, BODY_LIMIT, POST_TARGETS)
    if parsed is None:
        return
    conn = Connection(
        Limits(max_header_bytes=max_header, max_pipelined=max_pipelined, max_body_bytes=BODY_LIMIT)
    )
    try:
        conn.receive_data(data)
    except ProtocolError as error:  # pragma: no cover - the property failing
        pytest.fail(f"the engine would answer what the protocol refuses: {error.message}")
    seen = conn.take_all()
    # after a request that closes the connection the engine takes nothing more, and
    # the protocol module reads no further either
    assert len(seen) == len(parsed)
    for request, (is_post, value, mode) in zip(seen, parsed, strict=True):
        assert request.keep_alive == (mode != _reactor_py.CLOSE)
        if request.keep_alive:
            assert request.http10 == (mode == _reactor_py.KEEP_10)
        assert not conn.continue_wanted
        if is_post:
            assert request.method == b"POST" and request.target in POST_TARGETS
            assert request.body == value
            continue
        assert request.method == b"GET" and request.target == value
        assert b"if-none-match" not in request.headers
        assert b"if-modified-since" not in request.headers
        assert request.body == b""
    assert conn.phase.value == "idle" and not conn.closing


def test_answers_are_the_rendered_records_in_order_and_counted_per_status(
    arena: Arena,
) -> None:
    data = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /rev HTTP/1.1\r\n\r\n"
    a, rev = arena.lookup(b"/a", NOW), arena.lookup(b"/rev", NOW)
    assert a is not None and rev is not None
    render = _reactor_py.render
    for twin, reader in readers(arena).items():
        hits = [0, 0, 0, 0]
        out = twin.answer(data, reader, None, NOW, DATE, 0, 8192, 64, 0, (), hits)
        assert out == (render(a, DATE, NOW, 0) + render(rev, DATE, NOW, 0), False)
        assert hits == [1, 1, 0, 0]
    first = render(a, DATE, NOW, 0)
    # what the data plane sends for a cacheable answer (dataplane/app.py: ocsp_head)
    from responder.answers.answer import Answer
    from responder.dataplane.app import ocsp_head

    answer = Answer(DER, NOW - 60, NOW + 86400, NOW + 3600, True, "store", "good")
    assert first == (
        b"HTTP/1.1 200 OK\r\nDate: "
        + DATE
        + b"\r\n"
        + ocsp_head(answer)
        + b"Cache-Control: max-age=3600, public, no-transform, must-revalidate\r\n"
        + b"Content-Length: 5\r\n\r\n"
        + DER
    )
    # server.cache_max_age_seconds caps max-age
    assert b"max-age=300," in render(a, DATE, NOW, 300)
    for twin, reader in readers(arena).items():
        hits = [0, 0, 0, 0]
        out, _ = twin.answer(
            b"GET /a HTTP/1.1\r\n\r\n", reader, None, NOW, DATE, 300, 8192, 64, 0, (), hits
        )
        assert b"max-age=300," in out


@pytest.mark.parametrize("twin", TWINS, ids=twin_id)
def test_a_miss_a_stale_record_or_one_unanswerable_request_answers_nothing(
    arena: Arena, twin: ModuleType
) -> None:
    reader = twin.Reader(arena)
    hits = [0, 0, 0, 0]
    for data in (
        b"GET /missing HTTP/1.1\r\n\r\n",
        b"GET /old HTTP/1.1\r\n\r\n",  # refresh time reached
        b"GET /a HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"GET /a HTTP/1.1\r\n\r\nGET /missing HTTP/1.1\r\n\r\n",
        b'GET /a HTTP/1.1\r\nIf-None-Match: "x"\r\n\r\n',
        b"GET /a HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
        b"GET /a HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n",
        b"GET /a HTTP/1.0\r\n\r\nGET /a HTTP/1.1\r\n\r\n",  # one after a close
        b"GET /a HTTP/2.0\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\n",  # partial
    ):
        assert twin.answer(data, reader, None, NOW, DATE, 0, 8192, 64, 0, (), hits) is None, data
    # an owner silent for longer than OWNER_STALE: nothing is served
    later = NOW + 11
    get = b"GET /a HTTP/1.1\r\n\r\n"
    assert twin.answer(get, reader, None, later, DATE, 0, 8192, 64, 0, (), hits) is None
    assert hits == [0, 0, 0, 0]


@pytest.mark.parametrize("twin", TWINS, ids=twin_id)
def test_http_10_and_close_get_the_connection_line_the_full_path_sends(
    arena: Arena, twin: ModuleType
) -> None:
    """protocol.serialize adds `Connection: keep-alive` for an HTTP/1.0 client that
    keeps the connection, `Connection: close` for one that does not; so does the
    engine, and it says when to close."""
    from responder.http.protocol import Response, serialize

    record = arena.lookup(b"/a", NOW)
    assert record is not None
    reader = twin.Reader(arena)
    full = _reactor_py.render(record, DATE, NOW, 0)
    head, body = full.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")[2:]  # past the status line and Date
    for request, keep_alive, http10, close in (
        (b"GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True, True, False),
        (b"GET /a HTTP/1.0\r\n\r\n", False, True, True),
        (b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n", False, False, True),
    ):
        served = Response(
            200,
            [tuple(line.split(b": ", 1)) for line in lines[:-1]],
            body,  # type: ignore[misc]
        )
        from responder.http import protocol

        expected = serialize(served, keep_alive, http10).replace(protocol.date_header.now(), DATE)
        hits = [0, 0, 0, 0]
        got = twin.answer(request, reader, None, NOW, DATE, 0, 8192, 64, 0, (), hits)
        assert got == (expected, close), request


@pytest.mark.parametrize("twin", TWINS, ids=twin_id)
def test_posts_are_answered_by_the_data_plane_in_order_and_counted(
    arena: Arena, twin: ModuleType
) -> None:
    reader = twin.Reader(arena)
    hits = [0, 0, 0, 0]
    post = b"POST /ocsp HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    data = post + b"GET /a HTTP/1.1\r\n\r\n" + post
    out = twin.answer(data, reader, post_answer, NOW, DATE, 0, 8192, 64, 64, POST_TARGETS, hits)
    record = arena.lookup(b"/a", NOW)
    assert record is not None
    answered = post_answer(b"abc", _reactor_py.KEEP)
    assert answered is not None
    assert out == (answered + _reactor_py.render(record, DATE, NOW, 0) + answered, False)
    assert hits == [1, 0, 0, 2]
    # a body the data plane leaves to the full path, a body over the limit, two
    # Content-Lengths, a body not all here: nothing answered, nothing counted
    for refused in (
        b"POST /ocsp HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz",
        b"POST /ocsp HTTP/1.1\r\nContent-Length: 65\r\n\r\n" + b"a" * 65,
        b"POST /ocsp HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /ocsp HTTP/1.1\r\nContent-Length: 4\r\n\r\nabc",
        post + b"POST /elsewhere HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    ):
        args = (NOW, DATE, 0, 8192, 64, 64, POST_TARGETS, hits)
        assert twin.answer(refused, reader, post_answer, *args) is None, refused
    assert hits == [1, 0, 0, 2]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["put", "invalidate", "clear"]),
            st.integers(0, 12),
            st.integers(0, 3000),
        ),
        max_size=120,
    ),
    now=st.integers(NOW - 10, NOW + 1500),
    stale_ok=st.booleans(),
)
def test_compiled_arena_reader_agrees_with_the_pure_one(
    tmp_path: Path, ops: list[tuple[str, int, int]], now: int, stale_ok: bool
) -> None:
    """Records written, overwritten a lap later (a small ring), invalidated, cleared:
    both readers see the same answer for every URL."""
    path = tmp_path / f"diff-{os.getpid()}-{len(ops)}-{now}.arena"
    made = Arena.create(path, 1 << 16)  # 64 KiB: a few dozen records, then laps
    try:
        made.beat(now)
        for op, n, ttl in ops:
            url = b"/u%d" % n
            if op == "put":
                made.put(
                    url,
                    made.snapshot(n),
                    bytes([n]) * (ttl % 3000 + 1),
                    NOW,
                    NOW + 3000,
                    NOW + ttl,
                    n % 3,
                )
            elif op == "invalidate":
                made.invalidate(n)
            else:
                made.clear()
        compiled = _reactor_fast.Reader(made)
        for n in range(13):
            url = b"/u%d" % n
            assert compiled.lookup(url, now, stale_ok) == made.lookup(url, now, stale_ok)
        compiled.release()
    finally:
        made.close()
        path.unlink()


# --- the engine on socket pairs --------------------------------------------------------


def engine_of(twin: ModuleType, arena: Arena) -> object:
    return twin.Engine(twin.Reader(arena), None, 0, 8192, 64)


def pair(engine: object, now: float = 0.0) -> socket.socket:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    engine.add(ours.detach(), now)  # type: ignore[attr-defined]
    return theirs


def poll(engine: object, now: float = 1.0) -> list[tuple[int, bytes, bytes, bool]]:
    import select

    select.select([engine.fileno()], [], [], 2)  # type: ignore[attr-defined]
    return engine.poll(now, NOW, DATE)  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("twin", TWINS, ids=twin_id)
def test_engine_serves_hits_and_hands_off_the_rest_with_what_it_read(
    arena: Arena, twin: ModuleType
) -> None:
    engine = engine_of(twin, arena)
    client = pair(engine)
    try:
        client.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert poll(engine) == []
        record = arena.lookup(b"/a", NOW)
        assert record is not None
        assert client.recv(65536) == _reactor_py.render(record, DATE, NOW, 0)
        assert engine.connections == 1  # type: ignore[attr-defined]
        assert engine.take_counts()[:3] == (1, 0, 0)  # type: ignore[attr-defined]

        request = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        client.sendall(request)
        [(fd, data, unsent, close)] = poll(engine)
        assert (data, unsent, close) == (request, b"", False)
        assert engine.connections == 0  # type: ignore[attr-defined]
        # the descriptor is the caller's now, open and still connected
        os.write(fd, b"handed")
        assert client.recv(10) == b"handed"
        os.close(fd)
    finally:
        client.close()
        engine.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("twin", TWINS, ids=twin_id)
def test_engine_hands_over_what_a_client_that_does_not_read_has_not_taken(
    tmp_path: Path, twin: ModuleType
) -> None:
    big = Arena.create(tmp_path / "big.arena", 4 << 20)
    big.beat(NOW)
    fill(big, b"/big", der=b"\x30" * 200_000)
    engine = engine_of(twin, big)
    ours, client = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ours.setblocking(False)
    engine.add(ours.detach(), 0.0)  # type: ignore[attr-defined]
    try:
        client.sendall(b"GET /big HTTP/1.1\r\n\r\n")
        [(fd, data, unsent, _)] = poll(engine)
        record = big.lookup(b"/big", NOW)
        assert record is not None
        full = _reactor_py.render(record, DATE, NOW, 0)
        assert data == b"" and 0 < len(unsent) < len(full)
        assert full.endswith(unsent)
        os.close(fd)
    finally:
        client.close()
        engine.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("twin", TWINS, ids=twin_id)
def test_engine_closes_on_peer_close_expires_idle_and_evicts_the_longest_idle(
    arena: Arena, twin: ModuleType
) -> None:
    engine = engine_of(twin, arena)
    a = pair(engine, now=1.0)
    b = pair(engine, now=5.0)
    c = pair(engine, now=9.0)
    try:
        a.close()
        assert poll(engine) == []
        assert engine.connections == 2  # type: ignore[attr-defined]
        assert engine.take_counts()[4] == 1  # type: ignore[attr-defined]  # one peer close
        assert engine.evict() is True  # type: ignore[attr-defined]  # b, idle since 5
        assert b.recv(1) == b""
        assert engine.expire(10.0) == 1  # type: ignore[attr-defined]  # c, idle since 9
        assert c.recv(1) == b""
        assert engine.connections == 0  # type: ignore[attr-defined]
        assert engine.evict() is False  # type: ignore[attr-defined]
        # idle closes and evictions are the caller's to count, not peer closes
        assert engine.take_counts()[4] == 0  # type: ignore[attr-defined]
    finally:
        for s in (b, c):
            s.close()
        engine.close()  # type: ignore[attr-defined]


# --- HttpServer with a reactor, over TCP -------------------------------------------------

REACTOR_LIMITS = Limits(header_timeout=0.5, idle_timeout=0.6, max_connections=4)


class Plane:
    """A handler that puts what it answers into the arena, as the answer chain does."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self.handled: list[bytes] = []
        self.hits = [0, 0, 0]

    async def __call__(self, request: Request) -> Response:
        self.handled.append(request.method + b" " + request.target)
        if request.target == b"/learn":
            fill(self.arena, b"/learn", status=1)
        return Response(200, [], b"handled " + request.target)

    def count(self, good: int, revoked: int, unknown: int) -> None:
        self.hits = [self.hits[0] + good, self.hits[1] + revoked, self.hits[2] + unknown]


async def receive_response(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += await stream.receive_some(65536)
    return head + b"\r\n\r\n" + body


def with_server(
    tmp_path: Path, twin: ModuleType, body: Callable[[HttpServer, Plane, int], object]
) -> None:
    own = Arena.create(tmp_path / "server.arena", 1 << 20)
    own.beat(NOW)
    fill(own, b"/a")

    async def main() -> None:
        plane = Plane(own)
        reactor = Reactor(ArenaReader(own, twin), plane.count, REACTOR_LIMITS, clock=lambda: NOW)
        server = HttpServer(plane, REACTOR_LIMITS, reactor=reactor)
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listeners)
            with trio.fail_after(10):
                await body(server, plane, port)  # type: ignore[misc]
            nursery.cancel_scope.cancel()

    trio.run(main)


async def wait_for(condition: Callable[[], bool]) -> None:
    while not condition():
        await trio.sleep(0.01)


@pytest.mark.parametrize("twin", TWINS, ids=twin_id)
def test_server_misses_go_to_the_handler_and_the_connection_comes_back(
    tmp_path: Path, twin: ModuleType
) -> None:
    async def body(server: HttpServer, plane: Plane, port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /a HTTP/1.1\r\n\r\n")
        assert (await receive_response(stream)).endswith(DER)
        assert plane.hits == [1, 0, 0] and plane.handled == []

        await stream.send_all(b"GET /learn HTTP/1.1\r\n\r\n")
        assert (await receive_response(stream)).endswith(b"handled /learn")
        await wait_for(lambda: server.reactor.connections == 1)  # type: ignore[union-attr]
        # back in the reactor, which now answers what the handler put in the arena
        await stream.send_all(b"GET /learn HTTP/1.1\r\n\r\n")
        assert (await receive_response(stream)).endswith(DER)
        assert plane.hits == [1, 1, 0] and plane.handled == [b"GET /learn"]

        # a POST keeps its trio task for the next request
        await stream.send_all(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert (await receive_response(stream)).endswith(b"handled /")
        await trio.sleep(0.05)
        assert server.reactor.connections == 0  # type: ignore[union-attr]
        await stream.aclose()

    with_server(tmp_path, twin, body)


@pytest.mark.parametrize("twin", TWINS, ids=twin_id)
def test_server_with_reactor_still_cuts_slow_and_idle_clients(
    tmp_path: Path, twin: ModuleType
) -> None:
    async def body(server: HttpServer, plane: Plane, port: int) -> None:
        slow = await trio.open_tcp_stream("127.0.0.1", port)
        await slow.send_all(b"GET /a HT")  # a partial request: the handler's clock
        with trio.fail_after(3):
            answer = await slow.receive_some(65536)
        assert answer.startswith(b"HTTP/1.1 408 ")
        idle = await trio.open_tcp_stream("127.0.0.1", port)
        await wait_for(lambda: server.reactor.connections == 1)  # type: ignore[union-attr]
        with trio.fail_after(3):
            assert await idle.receive_some(65536) == b""  # closed quietly at idle_timeout
        assert server.connections == 0

    with_server(tmp_path, twin, body)


@pytest.mark.parametrize("twin", TWINS, ids=twin_id)
def test_at_the_cap_the_reactors_longest_idle_connection_makes_room(
    tmp_path: Path, twin: ModuleType
) -> None:
    async def body(server: HttpServer, plane: Plane, port: int) -> None:
        streams = []
        for _ in range(REACTOR_LIMITS.max_connections):
            streams.append(await trio.open_tcp_stream("127.0.0.1", port))
            await wait_for(lambda: server.connections == len(streams))
        newest = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(2):
            assert await streams[0].receive_some(10) == b""  # the longest idle
        await newest.send_all(b"GET /a HTTP/1.1\r\n\r\n")
        assert (await receive_response(newest)).startswith(b"HTTP/1.1 200 OK")
        assert server.connections == REACTOR_LIMITS.max_connections

    with_server(tmp_path, twin, body)


@pytest.mark.parametrize("twin", TWINS, ids=twin_id)
def test_engine_accepts_queued_connections_up_to_its_limit(arena: Arena, twin: ModuleType) -> None:
    engine = engine_of(twin, arena)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
    try:
        import errno
        import time

        time.sleep(0.05)  # the handshakes complete in the kernel
        assert engine.accept(listener, 2, 1.0) == (2, 0)  # type: ignore[attr-defined]
        assert engine.accept(listener, 5, 1.0) == (1, errno.EAGAIN)  # type: ignore[attr-defined]
        assert engine.connections == 3  # type: ignore[attr-defined]
        clients[0].sendall(b"GET /a HTTP/1.1\r\n\r\n")
        assert poll(engine) == []
        assert clients[0].recv(65536).endswith(DER)
    finally:
        for client in clients:
            client.close()
        listener.close()
        engine.close()  # type: ignore[attr-defined]


def test_a_handed_over_descriptor_that_is_no_socket_stops_nothing() -> None:
    """The reactor task must survive whatever one connection does; a descriptor that
    cannot be made a socket is closed and forgotten."""
    read_end, write_end = os.pipe()

    async def main() -> None:
        server = HttpServer(Plane.__call__, REACTOR_LIMITS)  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            server._adopt(nursery, read_end, b"GET / HTTP/1.1\r\n\r\n", b"", False)
            await trio.sleep(0)
        with pytest.raises(OSError):
            os.fstat(read_end)  # closed

    trio.run(main)
    os.close(write_end)
