"""The prober against a real store, with what the public URLs serve crafted to be
wrong one way at a time: each fault it must find (a CRL past its nextUpdate, an IDP
that is not the URL, a missing shard, a serial on two shards, an OCSP answer that
disagrees with the store), and a clean round finding none. The bytes are real CRLs
and OCSP answers signed by the test issuer; only the HTTP fetch is a table.
tests/e2e/test_probe_service.py runs `revocd probe` against a real revocd."""

import datetime as dt
import json
import time
from pathlib import Path

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp

from responder.config import parse_config, resolve_config
from responder.ingest import Ingestor
from responder.ocsp import HashAlgorithm, IssuerHashes
from responder.propagation.probe import Prober
from responder.store import Store

from ..store_helpers import issued, revoked

URL = "http://crl.revocd.test/alpha-{shard}.crl"
SHARDS = [URL.format(shard=s) for s in range(2)]
LIST = "http://crl.revocd.test/alpha.crls.json"
NOW = time.time()


def config(test_pki, tmp_path: Path):
    raw = {
        "issuers": {
            "alpha": {
                "certificate": str(test_pki.path("issuer.pem")),
                "key": str(test_pki.path("issuer.key")),
                "partitions": 4,
                "crl_shards": 2,
                "crl": {"key": str(test_pki.path("issuer.key")), "url": URL},
            }
        },
        "probe": {"ocsp_url": "http://ocsp.revocd.test/", "sample": 50},
        "propagation": {"probed_target_seconds": 60},
    }
    return resolve_config(parse_config(raw, base=tmp_path))


def crl(
    test_pki,
    url: str,
    serials,
    next_update: float | None = None,
    idp: str | None = None,
    number: int = 1,
    this_update: float | None = None,
):
    issuer = test_pki.issuer
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(dt.datetime.fromtimestamp(this_update or NOW - 60, dt.UTC))
        .next_update(dt.datetime.fromtimestamp(next_update or NOW + 86400, dt.UTC))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.IssuingDistributionPoint(
                [x509.UniformResourceIdentifier(idp or url)], None, False, False, None, False, False
            ),
            critical=True,
        )
    )
    for s in serials:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(s)
            .revocation_date(dt.datetime.fromtimestamp(NOW - 3600, dt.UTC))
            .build()
        )
    return b.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def ocsp_answer(test_pki, serial: int, status: str) -> bytes:
    h = IssuerHashes.from_certificate(test_pki.issuer.cert)
    alg = HashAlgorithm.SHA1
    kind = {"good": x509_ocsp.OCSPCertStatus.GOOD, "revoked": x509_ocsp.OCSPCertStatus.REVOKED}
    b = x509_ocsp.OCSPResponseBuilder().add_response_by_hash(
        h.name_hashes[alg],
        h.key_hashes[alg],
        serial,
        hashes.SHA1(),
        kind[status],
        dt.datetime.fromtimestamp(NOW - 60, dt.UTC),
        dt.datetime.fromtimestamp(NOW + 86400, dt.UTC),
        dt.datetime.fromtimestamp(NOW - 3600, dt.UTC) if status == "revoked" else None,
        None,
    )
    b = b.responder_id(x509_ocsp.OCSPResponderEncoding.HASH, test_pki.issuer.cert)
    return b.sign(test_pki.issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


class Public:
    """What the public URLs serve: CRLs by URL, OCSP answers by serial."""

    def __init__(self, prober: Prober) -> None:
        self.files: dict[str, bytes] = {}
        self.ocsp: dict[int, bytes] = {}
        self.urls: dict[str, int] = {}
        self.prober = prober

    def fetch(self, url: str) -> tuple[int, bytes]:
        if url in self.files:
            return 200, self.files[url]
        if url.startswith("http://ocsp.revocd.test/"):
            der = x509_ocsp.load_der_ocsp_request(
                __import__("base64").b64decode(__import__("urllib.parse").parse.unquote(url[24:]))
            )
            found = self.ocsp.get(der.serial_number)
            return (200, found) if found is not None else (404, b"")
        return 404, b""


REVOKED = (0x5001, 0x5002, 0x5003)
GOOD = (0x6001, 0x6002)


def run_round(test_pki, tmp_path, valkey_url, mutate, clock_offset: float = 0.0):
    cfg = config(test_pki, tmp_path)

    async def main():
        async with Store.open(valkey_url) as store:
            await store.register_issuers(cfg.issuers.values())
            store.ledger_seconds = 86400
            ingest = Ingestor(store, cfg.issuers)
            events = [issued(s, "alpha") for s in (*REVOKED, *GOOD)]
            events += [revoked(s, "alpha", at="2026-11-30T00:00:00Z") for s in REVOKED]
            results = await ingest.submit(events, None)
            assert all(r.result in ("applied", "unchanged") for r in results), results
            prober = Prober(store, cfg, clock=lambda: time.time() + clock_offset)
            public = Public(prober)
            prober.fetch = public.fetch
            # a correct world: shard = serial mod 2, every answer the store's
            for i, url in enumerate(SHARDS):
                public.files[url] = crl(test_pki, url, [s for s in REVOKED if s % 2 == i])
            public.files[LIST] = json.dumps(SHARDS).encode()
            for s in REVOKED:
                public.ocsp[s] = ocsp_answer(test_pki, s, "revoked")
            for s in GOOD:
                public.ocsp[s] = ocsp_answer(test_pki, s, "good")
            mutate(public)
            return await prober.round(), store

    report, _ = trio.run(main)
    return report


def checks(report) -> set[str]:
    return {p.check for p in report.problems}


@pytest.fixture
def round_with(test_pki, tmp_path, valkey_standalone):
    return lambda mutate, **kw: run_round(test_pki, tmp_path, valkey_standalone.url, mutate, **kw)


def test_a_correct_world_has_no_problems(round_with):
    report = round_with(lambda public: None)
    assert report.problems == []
    assert report.checks["ocsp_agrees"] >= 5 and report.checks["crl_agrees"] == 3, json.dumps(
        report.checks
    )
    assert report.checks["shard_present"] == 2 and report.checks["ccadb_list"] == 1


def test_finds_a_crl_past_its_next_update(round_with, test_pki):
    def stale(public):
        public.files[SHARDS[1]] = crl(test_pki, SHARDS[1], [0x5001, 0x5003], next_update=NOW - 10)

    assert checks(round_with(stale)) == {"crl_expired"}


def test_finds_an_idp_that_is_not_the_url(round_with, test_pki):
    def wrong_idp(public):
        public.files[SHARDS[0]] = crl(test_pki, SHARDS[0], [0x5002], idp=SHARDS[1])

    assert checks(round_with(wrong_idp)) == {"idp_mismatch"}


def test_finds_a_missing_shard_and_an_extra_one(round_with, test_pki):
    def missing(public):
        del public.files[SHARDS[1]]
        public.files[URL.format(shard=2)] = crl(test_pki, URL.format(shard=2), [])

    found = round_with(missing)
    assert checks(found) == {"shard_missing", "extra_shard"}
    assert [p.url for p in found.problems if p.check == "shard_missing"] == [SHARDS[1]]


def test_finds_a_serial_on_two_shards(round_with, test_pki):
    def twice(public):
        public.files[SHARDS[0]] = crl(test_pki, SHARDS[0], [0x5002, 0x5001])

    found = round_with(twice)
    assert checks(found) == {"serial_on_two_shards"}
    assert "5001" in found.problems[0].detail


def test_finds_an_ocsp_answer_that_disagrees_with_the_store(round_with, test_pki):
    def good_for_revoked(public):
        public.ocsp[0x5002] = ocsp_answer(test_pki, 0x5002, "good")
        public.ocsp[0x6001] = ocsp_answer(test_pki, 0x6001, "revoked")

    # past the probed target: the revocation should have propagated by now
    found = round_with(good_for_revoked, clock_offset=120)
    assert checks(found) == {"ocsp_disagrees"}
    assert sorted(p.detail.split(":")[0] for p in found.problems) == [
        "serial 5002",
        "serial 6001",
    ]


def test_finds_a_crl_listing_what_the_store_says_is_good_and_a_bad_list(round_with, test_pki):
    def wrong(public):
        # published after the store last changed 0x6001 (issued, good): it has no
        # business being on it
        later = time.time() + 5
        public.files[SHARDS[1]] = crl(
            test_pki, SHARDS[1], [0x5001, 0x5003, 0x6001], this_update=later
        )
        public.files[LIST] = json.dumps(SHARDS[:1]).encode()

    assert checks(round_with(wrong)) == {"crl_disagrees", "ccadb_list"}


def test_a_forged_crl_or_answer_is_refused(round_with, test_pki):
    other = __import__("responder.testing.pki", fromlist=["make_root"]).make_root("forger")

    class Forged:
        issuer = other
        cert = other.cert

    def forged(public):
        forger = type("P", (), {"issuer": other})()
        public.files[SHARDS[0]] = crl(forger, SHARDS[0], [0x5002])
        public.ocsp[0x6002] = ocsp_answer(forger, 0x6002, "good")

    assert checks(round_with(forged)) == {"crl_signature", "ocsp_signature"}


def test_finds_a_crl_that_omits_a_revocation_acknowledged_well_before_it(round_with, test_pki):
    def omitted(public):
        # thisUpdate two minutes after the revocations were acknowledged, 0x5002 missing
        later = time.time() + 120
        public.files[SHARDS[0]] = crl(test_pki, SHARDS[0], [], this_update=later)

    found = round_with(omitted)
    assert checks(found) == {"crl_missing_revocation"}
    assert "5002" in found.problems[0].detail
