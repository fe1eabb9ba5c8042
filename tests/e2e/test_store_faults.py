"""The store failing under a running revocd: the embedded server killed (started or
adopted after a crash) and frozen; and the relative paths an operator types."""

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from ..served import Served, start_served


def issued(serial: int) -> dict:
    return {
        "type": "issued",
        "issuer": "alpha",
        "serial": format(serial, "x"),
        "not_after": "2030-01-01T00:00:00Z",
    }


def test_serve_with_a_relative_config_path_and_the_embedded_store(tmp_path, test_pki):
    """At 3079c4f `revocd serve -c revocd.toml` crashed: valkey changed into its `dir`
    before opening a relative log file."""
    served = start_served(tmp_path / "rel", test_pki, workers=1, relative=True)
    try:
        assert served.push(issued(0x51))[0] == 200
        assert served.ocsp_post("alpha", 0x51)[0] == "good"
        assert (tmp_path / "rel" / "state" / "valkey" / "valkey.log").exists()
    finally:
        assert served.proc.stop() == 0, served.proc.output


class Pusher:
    """Pushes batches of new certificates until stopped; remembers what was acknowledged
    (200) and how long each push took."""

    def __init__(self, served: Served, first: int) -> None:
        self.served = served
        self.next = first
        self.acked: list[int] = []
        self.slowest = 0.0
        self.attempts = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            serials = list(range(self.next, self.next + 20))
            self.next += 20
            started = time.monotonic()
            try:
                status, _ = self.served.push(*(issued(s) for s in serials))
            except OSError:
                status = 0
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.attempts += 1
            if status == 200:
                self.acked.extend(serials)
            time.sleep(0.01)

    def __enter__(self) -> "Pusher":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


def valkey_pid(d: Path) -> int:
    return int((d / "state" / "valkey" / "valkey.pid").read_text())


def wait_applied(served: Served, serial: int, timeout: float) -> float:
    """Seconds until a push of `serial` is acknowledged."""
    started = time.monotonic()
    # One event for every try: a try that was applied but not acknowledged, followed
    # by one built a second later (another not_after), would be a conflict, not a replay.
    event = issued(serial)
    while time.monotonic() - started < timeout:
        try:
            if served.push(event)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no push acknowledged within {timeout} s:\n{served.proc.output}")


@pytest.mark.slow
@pytest.mark.parametrize("adopted", [False, True], ids=["started", "adopted"])
def test_embedded_valkey_killed_ten_times_under_ingest_load(tmp_path, test_pki, adopted):
    """Each kill recovers within 5 s without restarting revocd, and every acknowledged
    event is in the store at the end. `adopted`: the valkey was left running by a revocd
    that was SIGKILLed (at 3079c4f such a server was never restarted)."""
    d = tmp_path / "kill"
    if adopted:
        crashed = start_served(d, test_pki, workers=1)
        pid = valkey_pid(d)
        crashed.proc.process.kill()
        crashed.proc.process.wait()
        assert valkey_pid(d) == pid and os.path.exists(f"/proc/{pid}")
    served = start_served(d, test_pki, workers=1)
    try:
        if adopted:
            served.proc.wait_for("adopting the embedded valkey-server")
        recoveries = []
        with Pusher(served, 0x100000) as pusher:
            for kill in range(10):
                time.sleep(0.5)
                os.kill(valkey_pid(d), signal.SIGKILL)
                recoveries.append(wait_applied(served, 0xF00000 + kill, timeout=15))
        assert max(recoveries) <= 5.0, recoveries
        assert len(pusher.acked) > 100
        assert served.control("GET", "/readyz", token=None)[0] == 200
        missing = [
            s
            for s in pusher.acked
            if served.control("GET", f"/v1/issuers/alpha/certificates/{s:x}")[0] != 200
        ]
        assert not missing, f"{len(missing)} acknowledged events lost"
    finally:
        port = int((d / "state" / "valkey" / "port").read_text())
        assert served.proc.stop() == 0, served.proc.output
    # revocd stopped the server it adopted or started
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
def test_a_frozen_store_keeps_cached_answers_and_answers_everything_else_in_time(
    tmp_path, test_pki
):
    """SIGSTOP of the embedded valkey for 10 s: cached answers are served, uncached
    ones are tryLater, pushes get 503 with `failed` within durability_timeout_ms + 1 s
    (at 3079c4f a push waited 9.9 s and a status read got no answer), and everything
    resumes after SIGCONT."""
    d = tmp_path / "frozen"
    served = start_served(d, test_pki, workers=1)
    try:
        cached, uncached = 0xC0FFEE, 0xC0FFEF
        assert served.push(issued(cached), issued(uncached))[0] == 200
        assert served.ocsp_post("alpha", cached)[0] == "good"  # now in the local cache
        pid = valkey_pid(d)
        os.kill(pid, signal.SIGSTOP)
        try:
            frozen_at = time.monotonic()
            started = time.monotonic()
            assert served.ocsp_post("alpha", cached)[0] == "good"
            assert time.monotonic() - started < 0.5
            started = time.monotonic()
            assert served.ocsp_post("alpha", uncached)[0] == "try_later"
            assert time.monotonic() - started < 3.0
            started = time.monotonic()
            status, body = served.push(issued(0xC0FFF0))
            took = time.monotonic() - started
            assert status == 503 and body["counts"]["failed"] == 1, body
            assert took <= 2.0 + 1.0, took  # durability_timeout_ms (2000) + 1 s
            started = time.monotonic()
            status, _, _ = served.control("GET", f"/v1/issuers/alpha/certificates/{cached:x}")
            assert status == 503 and time.monotonic() - started <= 3.0
            assert served.control("GET", "/readyz", token=None)[0] == 503
            time.sleep(max(0.0, 10 - (time.monotonic() - frozen_at)))
            assert valkey_pid(d) == pid, "a frozen store is not dead: it must not be replaced"
        finally:
            os.kill(pid, signal.SIGCONT)
        recovered = wait_applied(served, 0xC0FFF0, timeout=10)
        assert recovered <= 5.0
        assert served.ocsp_post("alpha", uncached)[0] == "good"
        assert served.control("GET", "/readyz", token=None)[0] == 200
        # the failed push, retried, is applied once; the audit log says what happened
        audit = (d / "state" / "audit.log").read_text()
        assert '"kind":"event.failed"' in audit and "no answer within" in audit
    finally:
        assert served.proc.stop() == 0, served.proc.output
