"""A real Varnish (deploy/varnish/revocd.vcl, vmod-xkey) in front of `revocd serve`,
keeping answers and CRLs for days as revocd's CDN-Cache-Control allows: revocd's
purges, sent from the store's durable change streams, are what makes a revocation
visible through it. Each test tries to break one promise of docs/cdn.md."""

import base64
import time
import urllib.parse
from pathlib import Path

import pytest
from cryptography import x509

from responder.store.embedded import free_port

from ..served import Served, cert_status, now_iso, start_served
from ..service_helpers import start
from ..varnish import Varnish, varnish_for

pytestmark = pytest.mark.slow

DAYS = 10 * 86400  # the CDN may keep answers this long...
VALIDITY = 96 * 3600  # ...but never beyond nextUpdate (alpha's default validity)


def cdn_config(varnish_port: int, delay_ms: int = 100) -> str:
    # Short leases: a restarted revocd takes the killed one's purging over within 3 s.
    return f"""
[store]
lease_seconds = 3
[cdn]
tag_header = "xkey"
cdn_max_age_seconds = {DAYS}
purge_delay_ms = {delay_ms}
retry_max_seconds = 2
[[cdn.purge]]
name = "edge"
kind = "http"
url = "http://127.0.0.1:{varnish_port}/"
timeout_seconds = 1
"""


ALPHA_CRL = (
    '[issuers.alpha.crl]\nkey = "alpha.key"\n'
    'url = "http://crl.revocd.test/alpha.crl"\ndebounce_seconds = 0.2\n'
)


def start_pair(d, test_pki, delay_ms: int = 100) -> tuple[Served, Varnish]:
    svc = d / "svc"
    svc.mkdir(parents=True)
    (svc / "alpha.key").write_bytes(test_pki.issuer.key_pem)
    vport = free_port()
    served = start_served(
        svc, test_pki, workers=1, alpha_extra=ALPHA_CRL, extra=cdn_config(vport, delay_ms)
    )
    edge = varnish_for(d / "edge", served.port, vport)
    edge.start()
    # The purger's first pass (a first start purges each issuer's tag once) has gone
    # through: what the tests see after this is each change's own purge.
    deadline = time.monotonic() + 15
    while metric(served, 'revocd_cdn_purge_requests_total{result="ok",target="edge"}') < 1:
        assert time.monotonic() < deadline, served.proc.output
        time.sleep(0.1)
    return served, edge


@pytest.fixture(scope="module")
def pair(tmp_path_factory, test_pki):
    served, edge = start_pair(tmp_path_factory.mktemp("varnish"), test_pki)
    yield served, edge
    edge.stop()
    assert served.proc.stop() == 0, served.proc.output


def ocsp_path(served: Served, serial: int) -> str:
    b64 = base64.b64encode(served.request_der("alpha", serial)).decode()
    return "/" + urllib.parse.quote(b64, safe="")


def issue(served: Served, serial: int) -> None:
    status, body = served.push(
        {"type": "issued", "issuer": "alpha", "serial": f"{serial:x}", "not_after": now_iso(9e6)}
    )
    assert status == 200, body


def revoke(served: Served, serial: int) -> float:
    status, body = served.push(
        {
            "type": "revoked",
            "issuer": "alpha",
            "serial": f"{serial:x}",
            "reason": "keyCompromise",
            "revoked_at": now_iso(-5),
        }
    )
    assert status == 200 and body["results"][0]["result"] == "applied", body
    return time.monotonic()


def cached_good(edge: Varnish, path: str) -> None:
    """Fetch through the edge until it holds the answer (a HIT), good."""
    status, headers, body = edge.get(path)
    assert status == 200 and cert_status(body) == "good"
    status, headers, again = edge.get(path)
    assert headers["x-cache"] == "HIT" and again == body
    # kept for days, and the tags are the edge's only
    assert "xkey" not in headers


def wait_revoked(edge: Varnish, path: str, within: float) -> float:
    started = time.monotonic()
    while True:
        status, _headers, body = edge.get(path)
        if status == 200 and cert_status(body) == "revoked":
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"still {cert_status(body)} through the CDN"
        time.sleep(0.05)


def metric(served: Served, name: str) -> float:
    _status, _, _headers = served.control("GET", "/metrics", token=None)
    _, body, _ = served.control("GET", "/metrics", token=None)
    text = body.get("raw", "")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_origin_sends_tags_and_cdn_cache_control(pair):
    served, _edge = pair
    serial = 0xAA0001
    issue(served, serial)
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.request("GET", ocsp_path(served, serial))
    resp = conn.getresponse()
    resp.read()
    headers = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    assert headers["xkey"] == f"rv-alpha rv-alpha-s-{serial:x}"
    age = int(headers["cdn-cache-control"].removeprefix("max-age="))
    assert VALIDITY - 900 <= age <= VALIDITY  # thisUpdate is backdated a little
    # clients still get the answer's own max-age, ending at the planned re-sign
    assert int(headers["cache-control"].split("max-age=")[1].split(",")[0]) < age


def test_revocation_visible_through_the_cdn_within_two_seconds(pair):
    served, edge = pair
    serial = 0xAA0002
    issue(served, serial)
    path = ocsp_path(served, serial)
    cached_good(edge, path)
    revoke(served, serial)
    took = wait_revoked(edge, path, within=2.0)
    assert took < 2.0
    # and the edge caches the revoked answer in turn
    status, headers, body = edge.get(path)
    assert headers["x-cache"] == "HIT" and cert_status(body) == "revoked"
    # the ledger has the purge, requested and acknowledged after the acknowledgement
    # (written just after the purge and the serving: poll a moment)
    deadline = time.monotonic() + 3
    while True:
        status, ledger, _ = served.control(
            "GET", f"/v1/issuers/alpha/certificates/{serial:x}/propagation"
        )
        assert status == 200, ledger
        steps = {s["step"]: s for s in ledger["steps"]}
        if {"purge:edge:req", "purge:edge:ack", "served", "signed"} <= set(steps):
            break
        if time.monotonic() > deadline:
            Path("/tmp/served.log").write_text(served.proc.output)
        assert time.monotonic() < deadline, steps
        time.sleep(0.1)
    assert steps["purge:edge:ack"]["at_ms"] >= steps["purge:edge:req"]["at_ms"]
    assert ledger["acknowledged_at_ms"] <= steps["purge:edge:req"]["at_ms"]


def test_crl_publication_replaces_the_cached_crl_within_two_seconds(pair):
    served, edge = pair
    path = "/crl/alpha.crl"
    deadline = time.monotonic() + 20
    while edge.get(path)[0] != 200:
        assert time.monotonic() < deadline, "no CRL published"
        time.sleep(0.2)
    _, _, body = edge.get(path)
    _, headers, again = edge.get(path)
    assert headers["x-cache"] == "HIT" and again == body
    serial = 0xAA0100
    issue(served, serial)
    revoke(served, serial)
    # when the origin has the new CRL, the edge must have it within 2 s
    origin_deadline = time.monotonic() + 20
    while True:
        from ..service_helpers import get, split_response

        _, _, origin = split_response(get(served.port, path))
        if x509.load_der_x509_crl(origin).get_revoked_certificate_by_serial_number(serial):
            break
        assert time.monotonic() < origin_deadline, "the origin never published the CRL"
        time.sleep(0.05)
    published = time.monotonic()
    while True:
        _, headers, body = edge.get(path)
        if x509.load_der_x509_crl(body).get_revoked_certificate_by_serial_number(serial):
            break
        assert time.monotonic() - published < 2.0, "the edge kept the old CRL"
        time.sleep(0.05)


def test_purge_retried_while_the_cdn_is_down_and_landing_when_it_returns(pair):
    served, edge = pair
    serial = 0xAA0003
    issue(served, serial)
    path = ocsp_path(served, serial)
    cached_good(edge, path)
    errors_before = metric(served, 'revocd_cdn_purge_requests_total{result="error"')
    edge.freeze()  # down, its cache kept
    try:
        revoke(served, serial)
        time.sleep(3.5)  # several purge attempts time out
    finally:
        edge.thaw()
    assert metric(served, 'revocd_cdn_purge_requests_total{result="error"') > errors_before
    # the good answer was cached for days: only the retried purge can make this revoked
    wait_revoked(edge, path, within=6.0)


def test_crash_between_acknowledgement_and_purge_loses_no_purge(tmp_path, test_pki):
    # A purge delay long enough that the kill lands between the acknowledgement and
    # the purge, every time.
    served, edge = start_pair(tmp_path, test_pki, delay_ms=4000)
    try:
        serial = 0xAA0004
        issue(served, serial)
        path = ocsp_path(served, serial)
        time.sleep(4.5)  # the issuance's feed entry is past the delay: nothing pending
        cached_good(edge, path)
        revoke(served, serial)
        served.proc.process.kill()
        served.proc.process.wait()
        # the edge still has the good answer: no purge was sent
        _, headers, body = edge.get(path)
        assert headers["x-cache"] == "HIT" and cert_status(body) == "good"
        proc = start("serve", "-c", str(served.dir / "revocd.toml"))
        served.proc = proc
        proc.wait_for("revocd ready")
        wait_revoked(edge, path, within=15.0)
    finally:
        edge.stop()
        served.proc.stop()
