"""The public port attacked as a client on loopback would, against a running `revocd serve`:
upgrades and CONNECT, 100 slow-loris connections at the connection cap, a killed worker,
links planted in the CRL directory, Expect: 100-continue, and a bounded fuzz of mutated
requests, slow writers and resets. After each, a good client is answered."""

import os
import random
import select
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from ..integration.test_http_protocol import VALID
from ..served import cert_status, start_served
from ..service_helpers import get, raw_http, split_response
from .test_store_faults import issued

SERIAL = 0xA77AC4


def issue(served) -> None:
    status, _ = served.push(issued(SERIAL))
    assert status == 200


def still_serving(served) -> None:
    assert served.ocsp_post("alpha", SERIAL)[0] == "good"


@pytest.fixture(scope="module")
def capped(tmp_path_factory, test_pki):
    """One worker, at most 100 connections, 2 s to send a request's headers."""
    s = start_served(
        tmp_path_factory.mktemp("capped"),
        test_pki,
        workers=1,
        limits={"max_connections": 100, "header_timeout_seconds": 2, "body_timeout_seconds": 2},
    )
    issue(s)
    yield s
    assert s.proc.stop() == 0, s.proc.output


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n", 405),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
            200,
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            200,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
            b"Content-Length: 4\r\n\r\nabcd",
            400,
        ),
    ],
    ids=["connect", "h2c", "websocket", "upgrade-with-body"],
)
def test_upgrade_and_connect_are_answered_and_the_server_keeps_serving(capped, head, status):
    """At 3079c4f one such request ended the process. Twice in a row, to be sure."""
    for _ in range(2):
        raw = raw_http(capped.port, head + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 %d " % status), raw[:100]
        assert b"Connection: close\r\n" in raw
    assert capped.proc.process.poll() is None
    still_serving(capped)


def test_expect_100_continue(capped):
    der = capped.request_der("alpha", SERIAL)
    with socket.create_connection(("127.0.0.1", capped.port), timeout=5) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(der)
        )
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(der)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status, _, body = split_response(data)
    assert status == 200 and cert_status(body) == "good"


def test_100_slowloris_connections_at_the_cap_do_not_starve_a_good_client(capped):
    """100 connections trickling a byte every 0.3 s against max_connections = 100: each is
    closed with 408 within header_timeout + 1 s of its first byte, and a good client
    that arrives meanwhile is answered every time (at 3079c4f: 0 of 44)."""
    header_timeout = 2.0
    lorises = []
    for _ in range(100):
        s = socket.create_connection(("127.0.0.1", capped.port), timeout=5)
        s.setblocking(False)
        lorises.append([s, None, b"", None])  # socket, first byte at, received, closed at
    stop = threading.Event()
    prefix = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200

    def trickle() -> None:
        position = 0
        while not stop.is_set():
            now = time.monotonic()
            for entry in lorises:
                s, first, _, closed = entry
                if closed is not None:
                    continue
                try:
                    s.send(prefix[position : position + 1])
                    if first is None:
                        entry[1] = now
                except OSError:
                    pass
                try:
                    chunk = s.recv(4096)
                    entry[2] += chunk
                    if not chunk:
                        entry[3] = time.monotonic()
                except BlockingIOError:
                    pass
                except OSError:
                    entry[3] = time.monotonic()
            position += 1
            stop.wait(0.3)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        answered = 0
        for _ in range(10):
            status, _, body = split_response(get(capped.port, "/healthz"))
            answered += status == 200 and body == b"ok\n"
            time.sleep(0.1)
        assert answered == 10
        still_serving(capped)
        deadline = time.monotonic() + header_timeout + 3
        while time.monotonic() < deadline and any(e[3] is None for e in lorises):
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(5)
        for entry in lorises:
            entry[0].close()
    assert all(e[3] is not None for e in lorises), "a slow-loris connection is still open"
    for _, first, received, closed in lorises:
        assert received.startswith(b"HTTP/1.1 408 "), received[:60]
        assert closed - first <= header_timeout + 1.0
    still_serving(capped)


def test_links_and_other_non_files_in_the_crl_directory_are_not_served(capped):
    crl_dir = capped.dir / "state" / "crl"
    crl_dir.mkdir(parents=True, exist_ok=True)
    (crl_dir / "evil.crl").symlink_to(capped.dir / "alpha-responder.key")
    (crl_dir / "evil.json").symlink_to(capped.dir / "revocd.toml")
    os.mkfifo(crl_dir / "fifo.crl")
    (crl_dir / "dir.crl").mkdir()
    key = (capped.dir / "alpha-responder.key").read_bytes()
    (crl_dir / "alpha-responder.key").write_bytes(key)
    (crl_dir / "real.crl").write_bytes(b"0\x03\x02\x01\x01")
    for name in (
        "evil.crl",
        "evil.json",
        "fifo.crl",
        "dir.crl",
        "alpha-responder.key",
        ".real.crl",
    ):
        status, _, body = split_response(get(capped.port, f"/crl/{name}"))
        assert status == 404, name
        assert b"PRIVATE KEY" not in body
    status, headers, body = split_response(get(capped.port, "/crl/real.crl"))
    assert status == 200 and body == b"0\x03\x02\x01\x01"
    # a new publication (atomic rename) is served at once, with its own ETag
    (crl_dir / ".tmp").write_bytes(b"0\x03\x02\x01\x02")
    os.replace(crl_dir / ".tmp", crl_dir / "real.crl")
    status, again, body = split_response(get(capped.port, "/crl/real.crl"))
    assert status == 200 and body == b"0\x03\x02\x01\x02" and again["etag"] != headers["etag"]
    still_serving(capped)


def _reset(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


@pytest.mark.slow
def test_bounded_fuzz_of_a_running_data_plane(capped):
    """About 8 s of mutated requests, upgrades, slow writers and resets; afterwards the
    process is up and answers a good request correctly."""
    rng = random.Random(12)
    der = capped.request_der("alpha", SERIAL)
    seeds = [*VALID, b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(der) + der]
    end = time.monotonic() + 8
    sent = 0
    while time.monotonic() < end:
        data = bytearray(b"".join(rng.choices(seeds, k=rng.randint(1, 3))))
        for _ in range(rng.randint(0, 5)):
            at = rng.randrange(len(data))
            data[at] = rng.randrange(256)
        mode = rng.choice(["whole", "reset", "slow", "half"])
        try:
            s = socket.create_connection(("127.0.0.1", capped.port), timeout=2)
            if mode == "slow":
                for i in range(0, min(len(data), 40), 8):
                    s.sendall(data[i : i + 8])
                    time.sleep(0.02)
            else:
                s.sendall(data)
            if mode == "reset":
                _reset(s)
                continue
            if mode == "half":
                s.shutdown(socket.SHUT_WR)
            if select.select([s], [], [], 0.5)[0]:
                s.recv(65536)
            s.close()
        except OSError:
            pass
        sent += 1
    assert sent > 50
    assert capped.proc.process.poll() is None, capped.proc.output
    still_serving(capped)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, test_pki):
    s = start_served(tmp_path_factory.mktemp("workers"), test_pki, workers=2)
    issue(s)
    yield s
    assert s.proc.stop() == 0, s.proc.output


def readyz(served) -> tuple[int, dict]:
    status, body, _ = served.control("GET", "/readyz", token=None)
    return status, body


def worker_pids(parent: int) -> list[int]:
    """The data plane workers: spawned children of the serve process."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            pids.append(int(entry))
    return sorted(pids)


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_readyz_says_so_meanwhile(two_workers):
    parent = two_workers.proc.process.pid
    assert readyz(two_workers)[0] == 200
    before = worker_pids(parent)
    assert len(before) == 2, before
    os.kill(before[0], signal.SIGKILL)
    seen_unready = None
    answered = failed = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, body = readyz(two_workers)
        if status == 503:
            seen_unready = body
        if status == 200 and seen_unready is not None:
            break
        # The surviving worker keeps answering throughout. A connection that was in the
        # killed worker's accept queue is reset by the kernel (SO_REUSEPORT gives each
        # worker its own queue): the one probe under way at the kill may fail.
        try:
            answered += two_workers.ocsp_post("alpha", SERIAL)[0] == "good"
        except ConnectionError:
            failed += 1
        time.sleep(0.05)
    assert seen_unready is not None, "readyz never reported the dead worker"
    assert seen_unready["checks"]["data_plane"] == "1 of 2 workers serving"
    assert readyz(two_workers)[0] == 200
    after = worker_pids(parent)
    assert len(after) == 2 and before[0] not in after
    assert answered > 0 and failed <= 1
    status, metrics_text, _ = two_workers.control("GET", "/metrics")
    assert status == 200
    assert "revocd_dataplane_worker_restarts_total 1.0" in metrics_text["raw"]
    still_serving(two_workers)
