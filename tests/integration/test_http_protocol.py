"""The sans-IO HTTP module (responder/http/protocol.py) with plain byte strings.

Every case the public port meets is here without a socket: limits, upgrades and
CONNECT, Expect, pipelining, and a hypothesis fuzzer whose only allowed outcomes are
requests or a ProtocolError."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responder.http.protocol import (
    Connection,
    Limit,
    Limits,
    Phase,
    ProtocolError,
    Request,
    Response,
    error_bytes,
    http_date,
    serialize,
)

LIMITS = Limits(max_header_bytes=1024, max_body_bytes=512, max_pipelined=4)
GET = b"GET /MEQwQjBAMD4wPDAJBgUrDgMCGgUABBQ HTTP/1.1\r\nHost: ocsp.test\r\n\r\n"


def post(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
        b"Content-Length: %d\r\n%s\r\n" % (len(body), extra) + body
    )


def feed(data: bytes, limits: Limits = LIMITS) -> tuple[Connection, list[Request]]:
    conn = Connection(limits)
    conn.receive_data(data)
    return conn, conn.take_all()


def error_of(data: bytes, limits: Limits = LIMITS) -> ProtocolError:
    conn = Connection(limits)
    with pytest.raises(ProtocolError) as caught:
        conn.receive_data(data)
    return caught.value


def test_get_and_post_requests():
    _, [get] = feed(GET)
    assert get.method == b"GET" and get.target.startswith(b"/MEQw") and get.keep_alive
    assert get.headers[b"host"] == b"ocsp.test" and not get.http10
    _, [p] = feed(post(b"\x30\x03\x02\x01\x01"))
    assert p.method == b"POST" and p.body == b"\x30\x03\x02\x01\x01"


def test_http10_closes_unless_asked_to_keep_alive():
    _, [r] = feed(b"GET /x HTTP/1.0\r\n\r\n")
    assert r.http10 and not r.keep_alive
    _, [r] = feed(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert r.http10 and r.keep_alive


def test_phases_follow_the_request():
    conn = Connection(LIMITS)
    assert conn.phase is Phase.IDLE
    conn.receive_data(b"PO")
    assert conn.phase is Phase.HEADERS and conn.received == 2
    conn.receive_data(b"ST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n")
    assert conn.phase is Phase.BODY
    conn.receive_data(b"ab")
    assert conn.phase is Phase.BODY and conn.next_request() is None
    conn.receive_data(b"cd")
    assert conn.phase is Phase.IDLE and conn.received == 0
    request = conn.next_request()
    assert request is not None and request.body == b"abcd"


@pytest.mark.parametrize(
    ("data", "status", "limit"),
    [
        (b"GET /x HTTP/1.1\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n", 431, Limit.HEADER_BYTES),
        (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n", 431, Limit.HEADER_BYTES),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413, Limit.BODY_BYTES),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"201\r\n" + b"a" * 513,
            413,
            Limit.BODY_BYTES,
        ),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, Limit.MALFORMED),
        (
            b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
            Limit.MALFORMED,
        ),
        (b"GET /x HTTP/9.9\r\n\r\n", 400, Limit.MALFORMED),
        (b"CONNECT host:22 HTTP/1.1\r\nHost: host:22\r\n\r\n", 405, Limit.METHOD),
        (b"POST / HTTP/1.1\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\n", 417, Limit.EXPECTATION),
        (GET * 5, 400, Limit.PIPELINED),
    ],
)
def test_limits_and_malformed_input(data, status, limit):
    error = error_of(data)
    assert (error.status_hint, error.limit) == (status, limit)
    raw = error_bytes(error)
    assert raw.startswith(b"HTTP/1.1 %d " % status) and b"Connection: close\r\n" in raw


def test_connect_answer_names_the_allowed_methods():
    """RFC 9110 section 15.5.6: a 405 carries Allow."""
    raw = error_bytes(error_of(b"CONNECT host:22 HTTP/1.1\r\n\r\n"))
    assert b"Allow: GET, HEAD, POST\r\n" in raw


@pytest.mark.parametrize(
    "upgrade",
    [
        b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n",
        b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n",
    ],
    ids=["h2c", "websocket"],
)
def test_upgrade_requests_are_answered_over_http11_then_closed(upgrade):
    """RFC 9110 section 7.8: a server may ignore Upgrade. The GET is answered; what
    follows it may be the other protocol, so it is not read and the connection closes."""
    conn, [request] = feed(b"GET /x HTTP/1.1\r\nHost: x\r\n" + upgrade + b"\r\n\x00\x00garbage")
    assert request.method == b"GET" and not request.keep_alive and conn.closing
    conn.receive_data(GET)  # ignored: the connection is finished
    assert conn.next_request() is None


def test_upgrade_with_a_body_is_refused():
    error = error_of(post(b"abc", b"Connection: upgrade\r\nUpgrade: h2c\r\n"))
    assert (error.status_hint, error.limit) == (400, Limit.UPGRADE)


def test_expect_100_continue():
    conn = Connection(LIMITS)
    conn.receive_data(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert conn.continue_wanted and conn.next_request() is None
    conn.continue_wanted = False  # the server sent 100 Continue
    conn.receive_data(b"abc")
    request = conn.next_request()
    assert request is not None and request.body == b"abc" and not conn.continue_wanted
    # too large: refused before the client sends the body (RFC 9110 section 10.1.1)
    error = error_of(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9999\r\n\r\n")
    assert error.status_hint == 413


def test_pipelined_requests_in_order():
    _, requests = feed(GET + post(b"ab") + b"GET /healthz HTTP/1.1\r\n\r\n")
    assert [r.method for r in requests] == [b"GET", b"POST", b"GET"]
    assert requests[1].body == b"ab"


def test_serialize_304_has_no_body_or_length():
    """RFC 9110 section 15.4.5."""
    raw = serialize(Response(304, [(b"ETag", b'"x"')], b"body"), True, False)
    assert b"Content-Length" not in raw and not raw.endswith(b"body")
    raw = serialize(Response(200, [], b"body"), False, True)
    assert raw.endswith(b"Content-Length: 4\r\nConnection: close\r\n\r\nbody")
    assert serialize(Response(200, [], b"b"), True, True).count(b"Connection: keep-alive") == 1


def test_http_date_is_imf_fixdate():
    assert http_date(1795341600) == b"Sun, 22 Nov 2026 10:00:00 GMT"
    assert http_date(0) == b"Thu, 01 Jan 1970 00:00:00 GMT"


# --- fuzzing ----------------------------------------------------------------------------

VALID = [
    GET,
    post(b"\x30\x03\x02\x01\x01"),
    b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b'HEAD /crl/a.crl HTTP/1.1\r\nIf-None-Match: "x"\r\n\r\n',
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"GET /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    b"CONNECT a:1 HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(b"".join(draw(st.lists(st.sampled_from(VALID), min_size=1, max_size=4))))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        if op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


def run(data: bytes, cuts: list[int]) -> tuple[list[tuple[bytes, bytes, bytes, bool]], object]:
    """Feed `data` cut at `cuts`; the requests seen and how it ended."""
    conn = Connection(LIMITS)
    seen: list[tuple[bytes, bytes, bytes, bool]] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    try:
        for a, b in itertools.pairwise(points):
            conn.receive_data(data[a:b])
            seen += [(r.method, r.target, r.body, r.keep_alive) for r in conn.take_all()]
    except ProtocolError as error:
        return seen, (error.status_hint, error.limit)
    return seen, ("open", conn.phase, conn.closing)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.binary(max_size=2048)), st.lists(st.integers(0, 4096), max_size=8))
def test_fuzz_only_requests_or_protocol_errors(data, cuts):
    """Whatever arrives, in whatever pieces, the module yields requests or a
    ProtocolError (any other exception fails this test), and the error's status is
    one the server sends."""
    seen, end = run(data, cuts)
    if end[0] != "open":
        assert end[0] in (400, 405, 413, 417, 431, 505)
    for method, _, body, _ in seen:
        assert len(body) <= LIMITS.max_body_bytes and method


@settings(max_examples=200, deadline=None)
@given(mutated(), st.lists(st.integers(0, 4096), min_size=1, max_size=8))
def test_fuzz_cutting_does_not_change_the_outcome(data, cuts):
    """A request split across reads parses as it does in one read (no state lost at a
    boundary), except that a limit may be noticed after fewer requests."""
    whole, end_whole = run(data, [])
    pieces, end_pieces = run(data, cuts)
    if end_whole[0] == "open" and end_pieces[0] == "open":
        assert pieces == whole
    else:
        shorter, longer = sorted((whole, pieces), key=len)
        assert longer[: len(shorter)] == shorter
