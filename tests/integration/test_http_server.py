"""The trio HTTP server (responder/http/server.py) on memory streams with trio's MockClock:
deadlines, shedding at the connection cap, the per-connection fault boundary, Expect,
upgrades, and a fuzzer through both the fast path and the handler. No sockets, no
waiting: the mock clock jumps whenever every task is blocked."""

import contextlib
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responder.http.protocol import Limits, Request, Response
from responder.http.server import HttpServer
from responder.observability import metrics

from .test_http_protocol import mutated

LIMITS = Limits(
    header_timeout=5.0,
    body_timeout=4.0,
    send_timeout=3.0,
    idle_timeout=7.0,
    max_connections=3,
    max_body_bytes=512,
)
FAST_HIT = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfast"


async def echo(request: Request) -> Response:
    if request.target == b"/boom":
        raise RuntimeError("a bug in a handler")
    if request.target == b"/hang":
        await trio.sleep_forever()
    if request.target == b"/later":
        return Response(200, [], b"try later", pause=2.0)
    return Response(200, [(b"Content-Type", b"text/plain")], request.target + b"|" + request.body)


def fast(request: Request) -> bytes | None:
    if request.target == b"/fast-boom":
        raise RuntimeError("a bug in the fast path")
    return FAST_HIT if request.target == b"/hit" else None


Body = Callable[[HttpServer, trio.Nursery], Awaitable[None]]


def run(body: Body, limits: Limits = LIMITS) -> None:
    async def main() -> None:
        server = HttpServer(echo, limits, fast)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.sweep)
            await body(server, nursery)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def connect(
    server: HttpServer,
    nursery: trio.Nursery,
    pair: Callable[..., tuple] = trio.testing.memory_stream_pair,
) -> trio.abc.Stream:
    client, served = pair()

    async def serve() -> None:
        async with served:
            await server.serve_connection(served)

    nursery.start_soon(serve)
    return client


async def read_until_closed(client: trio.abc.Stream) -> bytes:
    data = b""
    while chunk := await client.receive_some(65536):
        data += chunk
    return data


async def read_response(client: trio.abc.Stream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await client.receive_some(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(rest) < length:
        rest += await client.receive_some(65536)
    return head + b"\r\n\r\n" + rest


def limit_hits(limit: str) -> float:
    return metrics.HTTP_LIMITS.labels(limit)._value.get()


async def good_request_answered(server: HttpServer, nursery: trio.Nursery) -> None:
    client = connect(server, nursery)
    await client.send_all(b"GET /ok HTTP/1.1\r\n\r\n")
    assert (await read_response(client)).endswith(b"/ok|")
    await client.aclose()


def test_slowloris_gets_408_at_the_header_timeout_however_often_it_sends():
    """The header deadline runs from the first byte; each byte does not reset it."""

    async def body(server: HttpServer, nursery: trio.Nursery) -> None:
        client = connect(server, nursery)
        start = trio.current_time()
        before = limit_hits("header_timeout")
        with trio.move_on_after(60):
            try:
                for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 100:
                    await client.send_all(bytes([byte]))
                    await trio.sleep(0.5)
            except trio.BrokenResourceError:
                pass
        answer = await read_until_closed(client)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert 5.0 <= trio.current_time() - start <= 5.0 + server.SWEEP_INTERVAL + 0.5
        assert limit_hits("header_timeout") == before + 1
        await good_request_answered(server, nursery)

    run(body)


def test_slow_body_gets_408_at_the_body_timeout():
    async def body(server: HttpServer, nursery: trio.Nursery) -> None:
        client = connect(server, nursery)
        await client.send_all(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n")
        start = trio.current_time()
        with trio.move_on_after(60):
            try:
                for _ in range(100):
                    await client.send_all(b"a")
                    await trio.sleep(1)
            except trio.BrokenResourceError:
                pass
        assert (await read_until_closed(client)).startswith(b"HTTP/1.1 408 ")
        assert 4.0 <= trio.current_time() - start <= 4.0 + server.SWEEP_INTERVAL + 1.0

    run(body)


def test_idle_connection_closed_quietly_and_keep_alive_clock_starts_after_the_answer():
    async def body(server: HttpServer, nursery: trio.Nursery) -> None:
        client = connect(server, nursery)
        start = trio.current_time()
        assert await read_until_closed(client) == b""
        assert 7.0 <= trio.current_time() - start <= 7.0 + server.SWEEP_INTERVAL
        client = connect(server, nursery)
        await trio.sleep(6)
        await client.send_all(b"GET /a HTTP/1.1\r\n\r\n")
        assert (await read_response(client)).endswith(b"/a|")
        answered = trio.current_time()
        assert await read_until_closed(client) == b""
        assert trio.current_time() - answered >= 7.0

    run(body)


def test_reader_that_never_reads_is_cut_at_the_send_timeout():
    async def body(server: HttpServer, nursery: trio.Nursery) -> None:
        # a lockstep pair buffers nothing: the answer waits until the client reads
        client = connect(server, nursery, trio.testing.lockstep_stream_pair)
        before = limit_hits("send_timeout")
        await client.send_all(b"GET /a HTTP/1.1\r\n\r\n")
        await trio.sleep(10)
        assert limit_hits("send_timeout") == before + 1
        assert server.connections == 0  # closed on our side
        await good_request_answered(server, nursery)

    run(body)


def test_at_the_cap_the_connection_that_sent_least_longest_ago_is_shed():
    async def body(server: HttpServer, nursery: trio.Nursery) -> None:
        quiet = connect(server, nursery)  # has sent nothing
        await trio.sleep(1)
        slow = connect(server, nursery)
        await slow.send_all(b"GET / HTTP/1.1\r\nX-A: 1\r\n")
        await trio.sleep(1)
        slower = connect(server, nursery)
        await slower.send_all(b"G")
        await trio.sleep(0.1)
        assert server.connections == 3
        before = limit_hits("shed")
        # The cap is reached: a fourth client is served, the quiet one makes room.
        await good_request_answered(server, nursery)
        assert await read_until_closed(quiet) == b""  # idle: closed without a word
        assert limit_hits("shed") == before + 1
        # With one connection being answered (never shed), the next to go is the one
        # that sent one byte, not the one that sent a line; it was mid-request: 408.
        hang = connect(server, nursery)
        await hang.send_all(b"GET /hang HTTP/1.1\r\n\r\n")
        await trio.sleep(0.1)
        await good_request_answered(server, nursery)
        assert (await read_until_closed(slower)).startswith(b"HTTP/1.1 408 ")
        await slow.send_all(b"\r\n")
        assert (await read_response(slow)).endswith(b"/|")

    run(body)


def test_when_every_connection_is_being_answered_a_new_one_gets_503():
    async def body(server: HttpServer, nursery: trio.Nursery) -> None:
        busy = []
        for _ in range(3):
            client = connect(server, nursery)
            await client.send_all(b"GET /hang HTTP/1.1\r\n\r\n")
            busy.append(client)
        await trio.sleep(0.1)
        before = limit_hits("max_connections")
        extra = connect(server, nursery)
        assert (await read_until_closed(extra)).startswith(b"HTTP/1.1 503 ")
        assert limit_hits("max_connections") == before + 1
        # the hanging answers run into the send timeout and free their places
        await trio.sleep(LIMITS.send_timeout + 1)
        assert server.connections == 0
        await good_request_answered(server, nursery)

    run(body)


def test_a_bug_in_the_handler_is_a_500_and_the_connection_goes_on():
    async def body(server: HttpServer, nursery: trio.Nursery) -> None:
        before = metrics.HTTP_INTERNAL_ERRORS._value.get()
        client = connect(server, nursery)
        await client.send_all(b"GET /boom HTTP/1.1\r\n\r\n")
        assert (await read_response(client)).startswith(b"HTTP/1.1 500 ")
        await client.send_all(b"GET /after HTTP/1.1\r\n\r\n")
        assert (await read_response(client)).endswith(b"/after|")
        assert metrics.HTTP_INTERNAL_ERRORS._value.get() == before + 1

    run(body)


def test_a_bug_in_the_fast_path_closes_only_that_connection():
    async def body(server: HttpServer, nursery: trio.Nursery) -> None:
        other = connect(server, nursery)
        await other.send_all(b"GET /hit HTTP/1.1\r\n\r\n")
        assert await read_response(other) == FAST_HIT
        client = connect(server, nursery)
        await client.send_all(b"GET /fast-boom HTTP/1.1\r\n\r\n")
        answer = await read_until_closed(client)
        assert answer.startswith(b"HTTP/1.1 500 ") and b"Connection: close" in answer
        await other.send_all(b"GET /hit HTTP/1.1\r\n\r\n")
        assert await read_response(other) == FAST_HIT

    run(body)


def test_expect_100_continue_is_answered_before_the_body():
    async def body(server: HttpServer, nursery: trio.Nursery) -> None:
        client = connect(server, nursery)
        await client.send_all(
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
        )
        assert await client.receive_some(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send_all(b"abc")
        assert (await read_response(client)).endswith(b"/|abc")

    run(body)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (
            b"GET /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AA\r\n\r\n",
            200,
        ),
        (b"GET /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 200),
        (b"CONNECT example.test:22 HTTP/1.1\r\nHost: example.test:22\r\n\r\n", 405),
    ],
    ids=["h2c", "websocket", "connect"],
)
def test_upgrade_and_connect_answered_then_closed(request_bytes, status):
    async def body(server: HttpServer, nursery: trio.Nursery) -> None:
        client = connect(server, nursery)
        await client.send_all(request_bytes + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        answer = await read_until_closed(client)
        assert answer.startswith(b"HTTP/1.1 %d " % status)
        assert b"Connection: close\r\n" in answer and answer.count(b"HTTP/1.1 ") == 1
        await good_request_answered(server, nursery)

    run(body)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=3), st.sampled_from([b"/hit", b"/miss"]))
def test_fuzz_through_the_server_then_a_good_request(inputs, path):
    """Mutated requests on several connections, with the fast path hitting or missing:
    no exception leaves the server, every connection ends, and a good request is
    answered afterwards."""

    async def body(server: HttpServer, nursery: trio.Nursery) -> None:
        clients = []
        for data in inputs:
            client = connect(server, nursery)
            await client.send_all(data.replace(b"/x", path))
            clients.append(client)
        for client in clients:
            with trio.fail_after(60):
                with contextlib.suppress(trio.BrokenResourceError):
                    await read_until_closed(client)
        await good_request_answered(server, nursery)

    run(body, Limits(header_timeout=2, body_timeout=2, send_timeout=2, idle_timeout=2))


def test_a_connection_told_to_wait_is_not_read_for_the_pause():
    """Response.pause (tryLater under overload): the answer goes out at once, the next
    request on that connection is read only after the pause."""

    async def body(server: HttpServer, nursery: trio.Nursery) -> None:
        client = connect(server, nursery)
        start = trio.current_time()
        await client.send_all(b"GET /later HTTP/1.1\r\n\r\n")
        assert (await read_response(client)).endswith(b"try later")
        assert trio.current_time() - start < 0.1
        await client.send_all(b"GET /next HTTP/1.1\r\n\r\n")
        assert (await read_response(client)).endswith(b"/next|")
        assert trio.current_time() - start >= 2.0

    run(body)
