"""The GET reactor and the shared answer cache inside `revocd serve`: what the reactor
answers is what the full path answers, a revocation reaches a keep-alive connection it
holds, `server.reactor = false` and `server.shared_cache_mb = 0` serve the same
without them, and a restarted worker finds the cache warm."""

import base64
import contextlib
import http.client
import os
import re
import signal
import time
import urllib.parse
from pathlib import Path

import pytest

from ..served import cert_status, now_iso, start_served

SERIAL = 0x5EAC70


def metric(served, name: str) -> float:
    _, body, _ = served.control("GET", "/metrics", token=None)
    match = re.search(rf"^{name} ([0-9.e+]+)$", body["raw"], re.M)
    return float(match.group(1)) if match else 0.0


def path_of(served, serial: int) -> str:
    return "/" + urllib.parse.quote(
        base64.b64encode(served.request_der("alpha", serial)).decode(), safe=""
    )


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, dict[str, str], bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


SETTINGS = {
    "reactor": "",
    "no-reactor": "reactor = false\n",
    "no-shared-cache": "shared_cache_mb = 0\n",
}


@pytest.fixture(scope="module", params=list(SETTINGS))
def served(request, tmp_path_factory, test_pki):
    on = request.param == "reactor"
    s = start_served(
        tmp_path_factory.mktemp("reactor"),
        test_pki,
        workers=1,
        args=("--workers", "1"),
        server_extra=SETTINGS[request.param],
    )
    issued = {"type": "issued", "issuer": "alpha", "not_after": now_iso(86400 * 30)}
    for serial in (SERIAL, SERIAL + 1):
        assert s.push({**issued, "serial": format(serial, "x")})[0] == 200
    s.reactor = on  # type: ignore[attr-defined]
    yield s
    assert s.proc.stop() == 0, s.proc.output


def test_a_repeated_get_is_answered_with_the_full_paths_bytes(served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    path = path_of(served, SERIAL)
    before = metric(served, "revocd_reactor_answers_total")
    first = get(conn, path)  # decoded, through the chain
    second = get(conn, path)  # from the cache: the reactor when it is on
    third = get(conn, path)
    conn.close()
    assert first[0] == second[0] == third[0] == 200
    assert cert_status(first[2]) == "good"
    assert first[2] == second[2] == third[2]
    for response in (second, third):
        headers = dict(response[1])
        expected = dict(first[1])
        # max-age counts down to the re-sign: a second may have passed
        age = int(headers.pop("cache-control").split("max-age=")[1].split(",")[0])
        want = int(expected.pop("cache-control").split("max-age=")[1].split(",")[0])
        assert want - 2 <= age <= want
        headers.pop("date")
        expected.pop("date")
        assert headers == expected
    served_by_reactor = metric(served, "revocd_reactor_answers_total") - before
    assert served_by_reactor == (2 if served.reactor else 0)


def test_a_revocation_reaches_a_connection_the_reactor_holds(served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    path = path_of(served, SERIAL + 1)
    for _ in range(3):  # cached, and (with the reactor) held by it between requests
        assert cert_status(get(conn, path)[2]) == "good"
    assert (
        served.push(
            {
                "type": "revoked",
                "issuer": "alpha",
                "serial": format(SERIAL + 1, "x"),
                "revoked_at": now_iso(-60),
                "reason": "keyCompromise",
            }
        )[0]
        == 200
    )
    deadline = time.monotonic() + 2
    status = "good"
    while status == "good" and time.monotonic() < deadline:
        status = cert_status(get(conn, path)[2])
    assert status == "revoked"
    # and from the cache again afterwards (the reactor's wire table refilled)
    before = metric(served, "revocd_reactor_answers_total")
    assert cert_status(get(conn, path)[2]) == "revoked"
    assert cert_status(get(conn, path)[2]) == "revoked"
    conn.close()
    if served.reactor:
        assert metric(served, "revocd_reactor_answers_total") - before >= 1


def sample(served, name: str, **labels: str) -> float:
    _, body, _ = served.control("GET", "/metrics", token=None)
    total = 0.0
    for line in body["raw"].splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def workers_of(pid: int) -> list[int]:
    """The data plane workers among a revocd's children (not the embedded store, not
    multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    out = []
    for child in children:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                out.append(int(child))
    return out


def test_a_restarted_worker_finds_the_shared_cache_warm(tmp_path, test_pki) -> None:
    s = start_served(tmp_path / "warm", test_pki, workers=2)
    try:
        issued = {"type": "issued", "issuer": "alpha", "not_after": now_iso(86400 * 30)}
        serials = range(0x7A0, 0x7A0 + 20)
        for serial in serials:
            assert s.push({**issued, "serial": format(serial, "x")})[0] == 200
        paths = [path_of(s, serial) for serial in serials]
        for path in paths:  # each read from the store once, by one worker or the other
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            assert cert_status(get(conn, path)[2]) == "good"
            conn.close()
        workers = workers_of(s.proc.process.pid)
        assert len(workers) == 2
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            fresh = [p for p in workers_of(s.proc.process.pid) if p not in workers]
            status, _, _ = s.control("GET", "/readyz", token=None)
            if len(fresh) == 2 and status == 200:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the workers did not come back")
        from_store = sample(s, "revocd_answer_source_total", source="store")
        answered = sample(s, "revocd_reactor_answers_total")
        for path in paths:  # new workers, new connections: the host's cache answers
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            assert cert_status(get(conn, path)[2]) == "good"
            conn.close()
        deadline = time.monotonic() + 10
        while sample(s, "revocd_reactor_answers_total") < answered + len(paths):
            assert time.monotonic() < deadline, "the reactor did not answer them all"
            time.sleep(0.2)
        assert sample(s, "revocd_answer_source_total", source="store") == from_store
        arena = next(Path("/dev/shm").glob("revocd-*.arena"), None)
        assert arena is not None
    finally:
        assert s.proc.stop() == 0, s.proc.output


def test_a_frozen_owner_means_answers_come_from_the_store_until_it_beats_again(
    tmp_path, test_pki
) -> None:
    """The owner (the main process) invalidates the shared cache; while it is frozen
    (SIGSTOP), no invalidation could reach the cache, so after OWNER_STALE the workers
    stop serving from it and every GET is answered from the store instead."""
    s = start_served(tmp_path / "frozen", test_pki, workers=2)
    try:
        issued = {"type": "issued", "issuer": "alpha", "not_after": now_iso(86400 * 30)}
        assert s.push({**issued, "serial": format(0x7B0, "x")})[0] == 200
        path = path_of(s, 0x7B0)

        def ask() -> str:
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            status = cert_status(get(conn, path)[2])
            conn.close()
            return status

        for _ in range(4):
            assert ask() == "good"
        answered = sample(s, "revocd_reactor_answers_total")
        from_store = sample(s, "revocd_answer_source_total", source="store")
        os.kill(s.proc.process.pid, signal.SIGSTOP)
        try:
            time.sleep(11)  # past OWNER_STALE
            for _ in range(6):
                assert ask() == "good"  # still answered, by the workers' full path
        finally:
            os.kill(s.proc.process.pid, signal.SIGCONT)
        assert sample(s, "revocd_reactor_answers_total") == answered
        assert sample(s, "revocd_answer_source_total", source="store") >= from_store + 6
        time.sleep(1.5)  # a heartbeat: served from the cache again
        before = sample(s, "revocd_reactor_answers_total")
        assert ask() == "good"
        deadline = time.monotonic() + 10
        while sample(s, "revocd_reactor_answers_total") < before + 1:
            assert time.monotonic() < deadline, "the shared cache did not serve again"
            time.sleep(0.2)
    finally:
        assert s.proc.stop() == 0, s.proc.output
