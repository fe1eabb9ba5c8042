"""Revocations reach every worker fast; a store outage degrades to tryLater and heals itself."""

import os
import random
import signal
import subprocess
import threading
import time

import pytest

from ..served import now_iso, start_served


def issued(serial):
    return {
        "type": "issued",
        "issuer": "alpha",
        "serial": format(serial, "x"),
        "not_after": now_iso(90 * 86400),
    }


@pytest.fixture
def two_workers(tmp_path, test_pki):
    s = start_served(tmp_path / "w2", test_pki, workers=2)
    yield s
    assert s.proc.stop() == 0, s.proc.output


def test_revocation_reaches_every_worker_within_a_second_under_load(two_workers):
    s = two_workers
    children = subprocess.run(
        ["pgrep", "-P", str(s.proc.process.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(children) >= 3  # two data plane workers and the embedded valkey-server
    serial = random.getrandbits(64) | 1 << 70
    others = [serial + i + 1 for i in range(200)]
    assert s.push(issued(serial), *map(issued, others))[0] == 200
    for _ in range(40):  # warm both workers' caches with the good answer
        assert s.ocsp_post("alpha", serial)[0] == "good"

    stop = threading.Event()
    load_errors: list[str] = []

    def load() -> None:
        while not stop.is_set():
            status, _ = s.ocsp_post("alpha", random.choice(others))
            if status != "good":
                load_errors.append(status)

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        revoked = {
            "type": "revoked",
            "issuer": "alpha",
            "serial": format(serial, "x"),
            "revoked_at": now_iso(),
            "reason": "keyCompromise",
        }
        assert s.push(revoked)[0] == 200
        acked = time.monotonic()
        while True:
            probes = [s.ocsp_post("alpha", serial)[0] for _ in range(30)]
            if all(p == "revoked" for p in probes):
                break
            assert time.monotonic() - acked < 5, probes
        elapsed = time.monotonic() - acked
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not load_errors
    assert elapsed < 1.0, f"revocation took {elapsed:.3f} s to show on every worker"


def _valkey_pid(served) -> int:
    return int((served.dir / "state" / "valkey" / "valkey.pid").read_text())


def test_store_outage_serves_cache_then_try_later_and_recovers(tmp_path, test_pki):
    s = start_served(tmp_path / "outage", test_pki, workers=1)
    try:
        cached, uncached = 0xCAC4E0, 0xCAC4E1
        assert s.push(issued(cached), issued(uncached))[0] == 200
        assert s.ocsp_post("alpha", cached)[0] == "good"  # now in the local cache

        # A hung store: cached answers keep flowing, the rest get tryLater, nothing hangs.
        pid = _valkey_pid(s)
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            assert s.ocsp_post("alpha", cached)[0] == "good"
            assert time.monotonic() - t0 < 0.5
            t0 = time.monotonic()
            assert s.ocsp_post("alpha", uncached)[0] == "try_later"
            assert time.monotonic() - t0 < 5
        finally:
            os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 15
        while s.ocsp_post("alpha", uncached)[0] != "good":
            assert time.monotonic() < deadline, "no recovery after the store came back"
            time.sleep(0.2)

        # A killed store: revocd restarts its embedded server and recovers by itself.
        other = 0xCAC4E2
        assert s.push(issued(other))[0] == 200
        os.kill(_valkey_pid(s), signal.SIGKILL)
        seen = set()
        deadline = time.monotonic() + 20
        while True:
            status = s.ocsp_post("alpha", other)[0]
            seen.add(status)
            assert status in ("good", "try_later"), status  # never a wrong status
            assert s.ocsp_post("alpha", cached)[0] == "good"
            if status == "good":
                break
            assert time.monotonic() < deadline, "the embedded store did not come back"
            time.sleep(0.1)
        s.proc.wait_for("restarting it on port")
    finally:
        assert s.proc.stop() == 0, s.proc.output
