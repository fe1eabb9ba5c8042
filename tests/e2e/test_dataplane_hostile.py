"""Hostile HTTP against the data plane: each case, then a normal request still works."""

import socket
import time

import pytest

from ..served import cert_status, start_served
from ..service_helpers import raw_http, split_response

SERIAL = 0xBAD0001


@pytest.fixture(scope="module")
def served(tmp_path_factory, test_pki):
    s = start_served(tmp_path_factory.mktemp("hostile"), test_pki, workers=1)
    status, _ = s.push(
        {
            "type": "issued",
            "issuer": "alpha",
            "serial": format(SERIAL, "x"),
            "not_after": "2030-01-01T00:00:00Z",
        }
    )
    assert status == 200
    yield s
    assert s.proc.stop() == 0, s.proc.output


def still_serving(served) -> None:
    assert served.ocsp_post("alpha", SERIAL)[0] == "good"


def post(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
        b"Content-Length: %d\r\n%s\r\n" % (len(body), extra) + body
    )


def test_oversize_headers_get_431(served):
    raw = raw_http(
        served.port, b"GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 431")
    still_serving(served)


def test_oversize_body_gets_413(served):
    raw = raw_http(served.port, post(b"\x30" * 20000))
    assert raw.startswith(b"HTTP/1.1 413")
    still_serving(served)


def test_oversize_body_announced_but_not_sent(served):
    raw = raw_http(served.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 413")
    still_serving(served)


def test_garbage_bytes_get_400(served):
    raw = raw_http(served.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)))
    assert raw.startswith(b"HTTP/1.1 400")
    still_serving(served)


def test_slowloris_is_cut_off(served):
    """A request that trickles in is closed after the header timeout (2 s here)."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
        start = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        closed = b""
        try:
            for _ in range(20):
                s.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            closed = s.recv(4096)
        except (ConnectionResetError, TimeoutError):
            closed = b""
        elapsed = time.monotonic() - start
    assert elapsed < 8
    assert closed == b"" or closed.startswith(b"HTTP/1.1 408")
    still_serving(served)


def test_idle_keepalive_connection_is_closed(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
        start = time.monotonic()
        assert s.recv(1) == b""  # the server closes after the idle timeout (3 s here)
        assert 2.5 < time.monotonic() - start < 8
    still_serving(served)


def test_half_closed_socket_still_gets_its_answer(served):
    der = served.request_der("alpha", SERIAL)
    raw = raw_http(served.port, post(der, b"Connection: close\r\n"), half_close=True)
    status, _, body = split_response(raw)
    assert status == 200 and cert_status(body) == "good"
    still_serving(served)


def test_pipelined_requests_answered_in_order(served):
    good = served.request_der("alpha", SERIAL)
    unknown = served.request_der("alpha", SERIAL + 99)
    payload = (
        post(good)
        + post(unknown)
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        + post(good, b"Connection: close\r\n")
    )
    raw = raw_http(served.port, payload)
    parts = raw.split(b"HTTP/1.1 ")[1:]
    assert len(parts) == 4
    bodies = [split_response(b"HTTP/1.1 " + p)[2] for p in parts]
    assert cert_status(bodies[0]) == "good"
    assert cert_status(bodies[1]) == "unknown"
    assert bodies[2] == b"ok\n"
    assert cert_status(bodies[3]) == "good"


def test_http10_and_keep_alive(served):
    der = served.request_der("alpha", SERIAL)
    raw = raw_http(served.port, b"POST / HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % len(der) + der)
    status, headers, body = split_response(raw)
    assert status == 200 and cert_status(body) == "good"
    assert headers.get("connection") == "close"
    # HTTP/1.0 with keep-alive: two requests on one connection
    req = (
        b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n" % len(der) + der
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as s:
        for _ in range(2):
            s.sendall(req)
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += s.recv(65536)
            assert b"connection: keep-alive" in head.lower()
            assert cert_status(rest[:length]) == "good"


def test_method_and_path_errors(served):
    assert raw_http(
        served.port, b"DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ).startswith(b"HTTP/1.1 405")
    assert raw_http(
        served.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ).startswith(b"HTTP/1.1 404")
    still_serving(served)


def test_ten_thousand_idle_connections(served):
    """10k idle sockets neither crash the server nor block a normal request."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 10_500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20_000), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 10_500, "need 10.5k descriptors"
    sockets = []
    try:
        for _ in range(10_000):
            s = socket.socket()
            s.setblocking(True)
            s.settimeout(5)
            s.connect(("127.0.0.1", served.port))
            sockets.append(s)
        still_serving(served)
    finally:
        for s in sockets:
            s.close()
    still_serving(served)
