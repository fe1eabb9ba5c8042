"""The CRL generator inside `revocd serve`: shards published at start, a pushed revocation
in its shard's CRL within seconds, a lifted hold leaving it, and `revocd crl build`."""

import hashlib
import itertools
import json
import subprocess
import sys
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..conftest import openssl
from ..served import now_iso, start_served
from ..service_helpers import get, split_response

SHARDS = 4
URL = "http://crl.revocd.test/alpha-{shard}.crl"


@pytest.fixture(scope="module")
def crl_served(tmp_path_factory, test_pki):
    d = tmp_path_factory.mktemp("crlgen") / "svc"
    d.mkdir()
    (d / "alpha.key").write_bytes(test_pki.issuer.key_pem)
    alpha = (
        f'policy = "smime"\ncrl_shards = {SHARDS}\n\n[issuers.alpha.crl]\n'
        f'key = "alpha.key"\nurl = "{URL}"\ndebounce_seconds = 0.3\n'
    )
    s = start_served(d, test_pki, workers=1, alpha_extra=alpha)
    yield s
    assert s.proc.stop() == 0, s.proc.output


def published(s, shard):
    return (s.dir / "state" / "crl" / f"alpha-{shard}.crl").read_bytes()


def listed(der, serial):
    return x509.load_der_x509_crl(der).get_revoked_certificate_by_serial_number(serial) is not None


def number(der):
    crl = x509.load_der_x509_crl(der)
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return time.monotonic()


def test_every_shard_and_the_list_are_published(crl_served, test_pki, tmp_path):
    for shard in range(SHARDS):
        der = published(crl_served, shard)
        crl = x509.load_der_x509_crl(der)
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert idp.critical and idp.value.full_name[0].value == URL.format(shard=shard)
        pem = tmp_path / f"{shard}.pem"
        pem.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        out = openssl("crl", "-in", pem, "-noout", "-CAfile", test_pki.path("issuer.pem"))
        assert "verify OK" in out.stdout + out.stderr
    urls = json.loads((crl_served.dir / "state" / "crl" / "alpha.crls.json").read_text())
    assert urls == [URL.format(shard=n) for n in range(SHARDS)]
    status, headers, body = split_response(get(crl_served.port, "/crl/alpha-2.crl"))
    assert status == 200 and headers["content-type"] == "application/pkix-crl"
    assert body == published(crl_served, 2)
    # caches keep it at most until the next planned publication, and at most an hour
    max_age = int(headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= 3600
    # Each publication is in the audit log with the digest of exactly what was published.
    records = [
        json.loads(line)
        for line in (crl_served.dir / "state" / "audit.log").read_text().splitlines()
    ]
    published_records = {
        r["file"]: r for r in records if r["kind"] == "crl.published" and r["issuer"] == "alpha"
    }
    assert set(published_records) == {f"alpha-{n}.crl" for n in range(SHARDS)}
    latest = published_records["alpha-2.crl"]
    assert latest["sha256"] == hashlib.sha256(published(crl_served, 2)).hexdigest()


def test_pushed_revocation_reaches_its_shard_within_seconds(crl_served):
    serial = 0xC0FFEE01
    shard = serial % SHARDS
    before = number(published(crl_served, shard))
    assert (
        crl_served.push(
            {
                "type": "issued",
                "issuer": "alpha",
                "serial": format(serial, "x"),
                "not_after": now_iso(86400 * 30),
            }
        )[0]
        == 200
    )
    pushed = time.monotonic()
    assert (
        crl_served.push(
            {
                "type": "revoked",
                "issuer": "alpha",
                "serial": format(serial, "x"),
                "revoked_at": now_iso(),
                "reason": "keyCompromise",
            }
        )[0]
        == 200
    )
    seen = wait_until(lambda: listed(published(crl_served, shard), serial))
    assert seen - pushed < 5  # the bound; the debounce here is 0.3 s
    after = published(crl_served, shard)
    assert number(after) > before
    for other in set(range(SHARDS)) - {shard}:
        assert not listed(published(crl_served, other), serial)


def test_lifted_hold_leaves_the_crl(crl_served):
    serial = 0xC0FFEE05
    shard = serial % SHARDS
    base = {"issuer": "alpha", "serial": format(serial, "x")}
    crl_served.push({"type": "issued", **base, "not_after": now_iso(86400 * 30)})
    crl_served.push(
        {"type": "revoked", **base, "revoked_at": now_iso(), "reason": "certificateHold"}
    )
    wait_until(lambda: listed(published(crl_served, shard), serial))
    assert crl_served.push({"type": "unrevoked", **base})[0] == 200
    wait_until(lambda: not listed(published(crl_served, shard), serial))


def test_crl_build_one_shot(crl_served, test_pki, tmp_path):
    out = tmp_path / "one.crl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "responder",
            "crl",
            "build",
            "-c",
            str(crl_served.dir / "revocd.toml"),
            "--issuer",
            "alpha",
            "--shard",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    crl = x509.load_der_x509_crl(out.read_bytes())
    assert crl.is_signature_valid(test_pki.issuer.cert.public_key())


def _issuer_crls(test_pki, tmp_path, policy):
    from crlgen.builder import Shard
    from crlgen.generator import issuer_crls
    from responder.config import CrlConfig, IssuerConfig
    from responder.ocsp.types import RevocationReason
    from responder.policy import Policy
    from responder.signing import SoftwareSigner
    from responder.store import CertRecord, Status

    config = IssuerConfig(
        "ret",
        tmp_path / "i.pem",
        Policy(policy),
        crl_shards=1,
        crl=CrlConfig(key=tmp_path / "k", url="http://x.test/ret.crl"),
    )
    signer = SoftwareSigner(test_pki.issuer.key)
    crls = issuer_crls(config, test_pki.issuer.cert, signer, tmp_path / "crl")
    now = int(time.time())
    expired = CertRecord(
        11,
        Status.REVOKED,
        now - 86400,
        2,
        now,
        0,
        revoked_at=now - 90000,
        reason=RevocationReason.KEY_COMPROMISE,
    )
    valid = CertRecord(
        12,
        Status.REVOKED,
        now + 86400,
        2,
        now,
        0,
        revoked_at=now - 90000,
        reason=RevocationReason.KEY_COMPROMISE,
    )
    crls.shards = {0: Shard.from_records([expired, valid])}
    crls.not_after = {11: expired.not_after, 12: valid.not_after}
    return crls, now


def test_expired_entry_leaves_after_one_crl_past_expiry(test_pki, tmp_path):
    """RFC 5280 section 3.3: an entry stays until it appeared on one CRL after expiry."""
    crls, now = _issuer_crls(test_pki, tmp_path, "tls")
    crls.prune(0)  # nothing published yet: it stays
    assert crls.shards[0].serials == [11, 12]
    crls.published_at[0] = now  # a CRL issued after the certificate expired carried it
    crls.prune(0)
    assert crls.shards[0].serials == [12] and 11 in crls.dropped


def test_code_signing_keeps_entries_for_ten_years(test_pki, tmp_path):
    crls, now = _issuer_crls(test_pki, tmp_path, "code_signing")
    crls.published_at[0] = now
    crls.prune(0)
    assert crls.shards[0].serials == [11, 12]
    assert crls.retention == 10 * 365 * 86400


def test_a_failing_origin_is_counted_and_the_shard_stays_due(test_pki, tmp_path):
    """A full disk under the CRL directory: no crash, `directory_error`, the previous CRL
    (none here) untouched, and the next publication of the shard succeeds."""
    import errno

    import trio

    from responder.observability import metrics

    crls, _ = _issuer_crls(test_pki, tmp_path, "tls")
    directory = crls.origin
    real_write = directory._write_tmp
    calls = []

    def full_disk(name, data):
        calls.append(name)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(name, data)

    directory._write_tmp = full_disk
    errors = metrics.CRL_PUBLISH.labels("ret", "directory_error")
    before = errors._value.get()
    crls.dirty.add(0)
    assert trio.run(crls.publish, 0) is False
    assert errors._value.get() == before + 1 and 0 in crls.dirty
    assert not (tmp_path / "crl" / "ret.crl").exists()
    assert trio.run(crls.publish, 0) is True
    assert 0 not in crls.dirty and (tmp_path / "crl" / "ret.crl").exists()
    assert calls == ["ret.crl", "ret.crl"]


def test_checks_and_writes_run_off_the_event_loop(test_pki, tmp_path):
    """While an origin's check-and-write runs, other tasks on the loop keep running."""
    import threading

    import trio

    crls, _ = _issuer_crls(test_pki, tmp_path, "tls")
    directory = crls.origin
    real_publish = directory.publish
    loop_thread = []

    def slow_publish(*args):
        loop_thread.append(threading.current_thread() is threading.main_thread())
        time.sleep(0.3)  # a large CRL's verify and fsync
        return real_publish(*args)

    directory.publish = slow_publish
    ticks = []

    async def main():
        async def ticker():
            while True:
                ticks.append(trio.current_time())
                await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            assert await crls.publish(0)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert loop_thread == [False]  # not on the loop's thread
    # Blocked, the ticker would have stopped for the whole 0.3 s.
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.25, max(gaps)


def test_a_checker_that_does_not_finish_is_an_origin_error(test_pki, tmp_path, monkeypatch):
    """The checks run in a process of their own (crlgen/checker.py). One that does not
    answer in time fails that publication as an origin error, leaving the published CRL
    as it was; the next pass publishes."""
    import trio

    from crlgen import publish
    from responder.observability import metrics

    crls, _ = _issuer_crls(test_pki, tmp_path, "tls")
    assert trio.run(crls.publish, 0) is True
    published = (tmp_path / "crl" / "ret.crl").read_bytes()
    errors = metrics.CRL_PUBLISH.labels("ret", "directory_error")
    before = errors._value.get()
    monkeypatch.setattr(publish, "CHECK_TIMEOUT", 0.001)
    assert trio.run(crls.publish, 0) is False
    assert errors._value.get() == before + 1
    assert (tmp_path / "crl" / "ret.crl").read_bytes() == published
    assert not list((tmp_path / "crl").glob(".*.tmp"))  # the unchecked CRL is removed
    monkeypatch.setattr(publish, "CHECK_TIMEOUT", 120.0)
    assert trio.run(crls.publish, 0) is True
