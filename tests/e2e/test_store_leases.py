"""Two revocd processes on one store split the background work by leases: each answer
is pre-signed once, one CRL generator publishes an issuer at a time with CRL numbers
that grow across both, and a killed process's work is taken over within a lease period
(at 3079c4f each process signed every answer and published every CRL)."""

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from responder.store import ValkeyProcess

from ..served import Served, start_served
from ..valkey import cluster_url, start_cluster
from .test_store_faults import issued
from .test_store_sentinel import revoked

LEASE = 3  # store.lease_seconds in these tests


def metric(served: Served, pattern: str) -> int:
    status, body, _ = served.control("GET", "/metrics", token=None)
    assert status == 200
    return int(sum(float(v) for v in re.findall(pattern, body["raw"], re.M)))


def presigned(served: Served) -> int:
    return metric(served, r'^revocd_presigned_total\{issuer="alpha",[^}]*\} ([0-9.e+]+)$')


def leases_held(served: Served) -> int:
    return metric(served, r'^revocd_leases_held\{[^}]*work="presign"[^}]*\} ([0-9.e+]+)$')


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


@contextlib.contextmanager
def two_on_one_store(
    start: Callable[[str, Path, object], Served],
    tmp_path: Path,
    test_pki: object,
    kind: str = "standalone",
) -> Iterator[tuple[Served, Served]]:
    """Two revocd processes on one valkey-server or one 3-master cluster; stopped (those
    still running) after."""
    if kind == "cluster":
        nodes = start_cluster(tmp_path / "cluster")
        url = cluster_url(nodes)
    else:
        nodes = [ValkeyProcess(tmp_path / "valkey").start()]
        url = nodes[0].url
    started: list[Served] = []
    try:
        started.append(start(url, tmp_path / "a", test_pki))
        started.append(start(url, tmp_path / "b", test_pki))
        yield started[0], started[1]
    finally:
        for served in started:
            if served.proc.process.poll() is None:
                assert served.proc.stop() == 0, served.proc.output
        for node in nodes:
            node.stop()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["standalone", "cluster"])
def test_two_processes_sign_each_answer_once_and_take_over(tmp_path, test_pki, kind):
    with two_on_one_store(start_on, tmp_path, test_pki, kind) as (first, second):
        # The partitions are split between the two (half each) within a few rounds.
        deadline = time.monotonic() + 4 * LEASE
        while sorted(leases_held(s) for s in (first, second)) != [6, 6]:  # 8 + 4 partitions
            assert time.monotonic() < deadline, [leases_held(s) for s in (first, second)]
            time.sleep(0.2)
        batch = [0xD00000 + i for i in range(200)]
        assert first.push(*(issued(s) for s in batch))[0] == 200
        assert wait_total([first, second], 200, timeout=30) >= 200
        time.sleep(2 * LEASE)  # lease periods pass, sweeps and keepers run in both
        a, b = presigned(first), presigned(second)
        assert a + b == 200, (a, b)  # each answer signed once between the two
        assert a > 0 and b > 0, (a, b)  # and both signed their share
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


def crl_at(served: Served) -> bytes | None:
    path = served.dir / "state" / "crl" / "alpha.crl"
    return path.read_bytes() if path.exists() else None


def crl_number(der: bytes) -> int:
    crl = x509.load_der_x509_crl(der)
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def listed(der: bytes | None, serial: int) -> bool:
    return der is not None and (
        x509.load_der_x509_crl(der).get_revoked_certificate_by_serial_number(serial) is not None
    )


def start_crl_on(url: str, d, test_pki) -> Served:
    d.mkdir(parents=True, exist_ok=True)
    (d / "alpha.key").write_bytes(test_pki.issuer.key_pem)
    return start_served(
        d,
        test_pki,
        workers=1,
        alpha_extra='\n[issuers.alpha.crl]\nkey = "alpha.key"\n'
        'url = "http://crl.revocd.test/alpha.crl"\ndebounce_seconds = 0.3\n',
        extra=f'[store]\nurl = "{url}"\nlease_seconds = {LEASE}\n',
        args=("--no-presign",),
    )


@pytest.mark.slow
def test_two_crl_generators_publish_in_turn_with_growing_numbers(tmp_path, test_pki):
    with two_on_one_store(start_crl_on, tmp_path, test_pki) as (first, second):
        time.sleep(2 * LEASE)
        publishers = [s for s in (first, second) if crl_at(s) is not None]
        assert len(publishers) == 1, "exactly one generator publishes the issuer"
        holder = publishers[0]
        other = second if holder is first else first
        x, y = 0xE00001, 0xE00002
        assert holder.push(issued(x), issued(y))[0] == 200
        assert holder.push(revoked(x))[0] == 200
        deadline = time.monotonic() + 10
        while not listed(crl_at(holder), x):
            assert time.monotonic() < deadline, "the holder did not publish the revocation"
            time.sleep(0.1)
        last = crl_number(crl_at(holder))
        assert crl_at(other) is None
        holder.proc.process.kill()
        holder.proc.process.wait()
        killed = time.monotonic()
        assert other.push(revoked(y))[0] == 200
        while not (listed(crl_at(other), x) and listed(crl_at(other), y)):
            assert time.monotonic() - killed < LEASE + LEASE / 4 + 5, "no takeover"
            time.sleep(0.1)
        assert crl_number(crl_at(other)) > last  # strictly increasing across both
