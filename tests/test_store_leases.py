"""Two revocd processes on one store split the pre-signing by partition leases: each
answer is signed once, and a killed process's partitions are taken over within a lease
period (at 3079c4f each process signed every answer)."""

import re
import time

import pytest

from responder.store import ValkeyProcess

from .served import Served, start_served
from .test_store_faults import issued

LEASE = 3  # store.lease_seconds in these tests


def presigned(served: Served) -> int:
    status, body, _ = served.control("GET", "/metrics", token=None)
    assert status == 200
    return int(
        sum(
            float(v)
            for v in re.findall(
                r'^revocd_presigned_total\{issuer="alpha",[^}]*\} ([0-9.e+]+)$',
                body["raw"],
                re.M,
            )
        )
    )


def start_on(url: str, d, test_pki) -> Served:
    return start_served(
        d,
        test_pki,
        workers=1,
        extra=f'[store]\nurl = "{url}"\nlease_seconds = {LEASE}\n'
        "[presign]\nsweep_interval_seconds = 600\n",
        args=("--no-crl",),
    )


def wait_total(processes: list[Served], at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        total = sum(presigned(p) for p in processes)
        if total >= at_least or time.monotonic() > deadline:
            return total
        time.sleep(0.2)


@pytest.mark.slow
def test_two_processes_sign_each_answer_once_and_take_over(tmp_path, test_pki):
    store = ValkeyProcess(tmp_path / "valkey").start()
    first = start_on(store.url, tmp_path / "a", test_pki)
    second = start_on(store.url, tmp_path / "b", test_pki)
    try:
        batch = [0xD00000 + i for i in range(200)]
        assert first.push(*(issued(s) for s in batch))[0] == 200
        assert wait_total([first, second], 200, timeout=30) >= 200
        time.sleep(2 * LEASE)  # lease periods pass, sweeps and keepers run in both
        a, b = presigned(first), presigned(second)
        assert a + b == 200, (a, b)  # each answer signed once between the two
        # The process holding the partitions is killed; the other takes them over
        # within a lease period and signs what is issued afterwards.
        holder, other = (first, second) if a >= b else (second, first)
        before = presigned(other)
        holder.proc.process.kill()
        holder.proc.process.wait()
        killed = time.monotonic()
        more = [0xD10000 + i for i in range(50)]
        assert other.push(*(issued(s) for s in more))[0] == 200
        got = wait_total([other], before + 50, timeout=LEASE + 10)
        took = time.monotonic() - killed
        assert got >= before + 50, (got, before)
        assert took <= LEASE + LEASE / 4 + 3, took
        for serial in more:
            assert other.ocsp_post("alpha", serial)[0] == "good"
    finally:
        for served in (first, second):
            if served.proc.process.poll() is None:
                assert served.proc.stop() == 0, served.proc.output
        store.stop()
