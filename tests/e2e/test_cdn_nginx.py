"""deploy/nginx/revocd-cdn.conf.template in front of `revocd serve`: nginx caches OCSP GET
answers and CRLs, revalidates them with 304s when max-age ends, and serves the revoked
answer (and the new CRL) once the cached copy expires after a revocation."""

import base64
import http.client
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
from cryptography import x509

from loadtests.nginx_conf import main_conf
from responder.store.embedded import free_port

from ..conftest import require_tool
from ..served import cert_status, now_iso, start_served

TEMPLATE = Path(__file__).parents[2] / "deploy" / "nginx" / "revocd-cdn.conf.template"
MAX_AGE = 2
SERIAL = 0xCD0001


def render(template: str, values: dict[str, str]) -> str:
    """What the nginx image's envsubst step does: only the variables it is given."""
    for name, value in values.items():
        template = template.replace("${" + name + "}", value)
    assert "${REVOCD" not in template
    return template


@pytest.fixture(scope="module")
def cdn(tmp_path_factory, test_pki):
    exe = require_tool("nginx")
    d = tmp_path_factory.mktemp("cdn")
    svc = d / "svc"
    svc.mkdir()
    (svc / "alpha.key").write_bytes(test_pki.issuer.key_pem)
    served = start_served(
        svc,
        test_pki,
        workers=1,
        server_extra=f"cache_max_age_seconds = {MAX_AGE}\n",
        alpha_extra=(
            '[issuers.alpha.crl]\nkey = "alpha.key"\n'
            'url = "http://crl.revocd.test/alpha.crl"\ndebounce_seconds = 0.3\n'
        ),
    )
    port = free_port()
    edge = d / "edge"
    edge.mkdir()
    (edge / "revocd-cdn.conf").write_text(
        render(
            TEMPLATE.read_text(),
            {
                "REVOCD_DATA_PLANE": f"127.0.0.1:{served.port}",
                "REVOCD_CDN_LISTEN": f"127.0.0.1:{port}",
                "REVOCD_CDN_CACHE": str(edge / "cache"),
            },
        )
    )
    (edge / "nginx.conf").write_text(
        main_conf(edge, f"    include {edge}/revocd-cdn.conf;", worker_connections=256)
    )
    proc = subprocess.Popen(
        [exe, "-c", str(edge / "nginx.conf"), "-p", str(edge)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            fetch(port, "/healthz")
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.1)
    yield served, port
    proc.terminate()
    proc.wait(10)
    assert served.proc.stop() == 0, served.proc.output


def fetch(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def wait_out_max_age() -> None:
    time.sleep(MAX_AGE + 1.1)


def test_ocsp_answers_cached_revalidated_and_revoked_after_expiry(cdn):
    served, port = cdn
    served.push(
        {"type": "issued", "issuer": "alpha", "serial": f"{SERIAL:x}", "not_after": now_iso(9e6)}
    )
    b64 = base64.b64encode(served.request_der("alpha", SERIAL)).decode()
    path = "/" + urllib.parse.quote(b64, safe="")

    status, headers, body = fetch(port, path)
    assert status == 200 and cert_status(body) == "good"
    assert headers["x-cache-status"] == "MISS"
    assert headers["cache-control"].startswith(f"max-age={MAX_AGE},")
    status, headers, again = fetch(port, path)
    assert headers["x-cache-status"] == "HIT" and again == body

    # Nothing changed: nginx asks with If-None-Match and gets a 304 (REVALIDATED).
    wait_out_max_age()
    status, headers, again = fetch(port, path)
    assert status == 200 and headers["x-cache-status"] == "REVALIDATED" and again == body

    status, _ = served.push(
        {
            "type": "revoked",
            "issuer": "alpha",
            "serial": f"{SERIAL:x}",
            "reason": "keyCompromise",
            "revoked_at": now_iso(-5),
        }
    )
    assert status == 200
    # Inside max-age the edge still has the good answer: the bound the operator chose.
    status, headers, cached = fetch(port, path)
    assert headers["x-cache-status"] == "HIT" and cert_status(cached) == "good"
    wait_out_max_age()
    status, headers, fresh = fetch(port, path)
    assert status == 200 and cert_status(fresh) == "revoked"
    assert headers["x-cache-status"] == "EXPIRED"  # revalidated, and the answer changed
    status, headers, again = fetch(port, path)
    assert headers["x-cache-status"] == "HIT" and cert_status(again) == "revoked"


def test_crls_cached_revalidated_and_replaced_after_a_revocation(cdn):
    served, port = cdn
    crl_path = "/crl/alpha.crl"
    deadline = time.monotonic() + 20
    while True:
        status, headers, body = fetch(port, crl_path)
        if status == 200:
            break
        assert time.monotonic() < deadline, f"no CRL published ({status})"
        time.sleep(0.3)
    status, headers, again = fetch(port, crl_path)
    assert headers["x-cache-status"] == "HIT" and again == body
    crl = x509.load_der_x509_crl(body)
    serial = 0xCD0100
    assert crl.get_revoked_certificate_by_serial_number(serial) is None

    wait_out_max_age()
    status, headers, again = fetch(port, crl_path)
    if again != body:  # a periodic republish raced us; compare with the newer one
        body = again
    else:
        assert headers["x-cache-status"] == "REVALIDATED"

    served.push(
        {"type": "issued", "issuer": "alpha", "serial": f"{serial:x}", "not_after": now_iso(9e6)}
    )
    served.push(
        {
            "type": "revoked",
            "issuer": "alpha",
            "serial": f"{serial:x}",
            "reason": "superseded",
            "revoked_at": now_iso(-5),
        }
    )
    deadline = time.monotonic() + 20
    while True:
        wait_out_max_age()
        status, headers, newer = fetch(port, crl_path)
        crl = x509.load_der_x509_crl(newer)
        if crl.get_revoked_certificate_by_serial_number(serial) is not None:
            break
        assert time.monotonic() < deadline, "the edge never served the new CRL"
    assert headers["x-cache-status"] == "EXPIRED"
