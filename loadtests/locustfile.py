"""Realistic load on a revocd deployment, for locust.

Who comes to an OCSP responder, and what they expect:

- StaplingServer: nginx/HAProxy fetching answers by GET over keep-alive, for popular
  certificates far more often than for others (Zipf over the issued serials);
- Browser: a TLS client asking by POST with a fresh nonce, which must be echoed;
- CdnRevalidation: a CDN revalidating a cached GET answer with If-None-Match (304);
- CrlPuller: a CDN or CRLite-style crawler pulling the CRL and revalidating it;
- CaPusher: the CA pushing issuance and small revocation bursts to the control plane.

Targets are read from a `revocd demo` directory (issuer.pem, serials.txt, control-token,
revocd.toml) or from environment variables:

    REVOCD_DEMO_DIR   the demo directory (default ./revocd-demo)
    REVOCD_CONTROL    control plane URL (default: from the demo's revocd.toml)
    REVOCD_CRL_PATH   CRL path on the data plane (default /crl/demo.crl)
    REVOCD_ISSUER     issuer name for pushed events (default demo)

    locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:8080

`unknown` answers for serials never issued are expected, not failures.
"""

import itertools
import os
import random
import time
import tomllib
from pathlib import Path

from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from locust import FastHttpUser, HttpUser, between, constant_pacing, task
from ocsp_requests import get_path, ocsp_request

from responder.ocsp import HashAlgorithm, IssuerHashes, encode_cert_id

DEMO = Path(os.environ.get("REVOCD_DEMO_DIR", "revocd-demo"))
ISSUER_NAME = os.environ.get("REVOCD_ISSUER", "demo")
CRL_PATH = os.environ.get("REVOCD_CRL_PATH", f"/crl/{ISSUER_NAME}.crl")
ISSUER = x509.load_pem_x509_certificate((DEMO / "issuer.pem").read_bytes())
HASHES = IssuerHashes.from_certificate(ISSUER)
STATUS: dict[int, str] = {}
for line in (DEMO / "serials.txt").read_text().splitlines():
    serial, state = line.split()
    STATUS[int(serial, 16)] = state
SERIALS = list(STATUS)
# Zipf-like popularity: the k-th certificate is asked for in proportion to 1/k^1.1.
CUM_WEIGHTS = list(itertools.accumulate(1 / (k**1.1) for k in range(1, len(SERIALS) + 1)))
TOKEN = (DEMO / "control-token").read_text().strip() if (DEMO / "control-token").exists() else ""
_config = (
    tomllib.loads((DEMO / "revocd.toml").read_text()) if (DEMO / "revocd.toml").exists() else {}
)
CONTROL = os.environ.get(
    "REVOCD_CONTROL",
    "http://{}:{}".format(
        _config.get("control", {}).get("host", "127.0.0.1"),
        _config.get("control", {}).get("port", 8081),
    ),
)


def request_for(
    serial: int, nonce: bytes | None = None, algorithm: HashAlgorithm = HashAlgorithm.SHA1
) -> bytes:
    cid = encode_cert_id(
        algorithm, HASHES.name_hashes[algorithm], HASHES.key_hashes[algorithm], serial
    )
    return ocsp_request(cid, nonce)


def path_for(serial: int) -> str:
    return get_path(request_for(serial))


def popular_serial() -> int:
    if random.random() < 0.02:  # a few questions about certificates never issued
        return random.getrandbits(120) | 1
    return random.choices(SERIALS, cum_weights=CUM_WEIGHTS)[0]


def check_answer(response, serial: int, nonce: bytes | None = None) -> None:  # type: ignore[no-untyped-def]
    """Mark the locust response failed unless it is the answer revocd must give."""
    if response.status_code != 200:
        response.failure(f"HTTP {response.status_code}")
        return
    parsed = asn1_ocsp.OCSPResponse.load(response.content)
    if parsed["response_status"].native != "successful":
        response.failure(f"OCSP {parsed['response_status'].native}")
        return
    data = parsed.basic_ocsp_response["tbs_response_data"]
    status = data["responses"][0]["cert_status"].name
    expected = STATUS.get(serial, "unknown")
    if status != expected:
        response.failure(f"serial {serial:x}: {status}, expected {expected}")
        return
    if nonce is not None:
        exts = data["response_extensions"]
        echoed = [e["extn_value"].parsed.native for e in exts if e["extn_id"].native == "nonce"]
        if echoed != [nonce]:
            response.failure("nonce not echoed")
            return
    response.success()


class StaplingServer(FastHttpUser):
    weight = 6
    wait_time = between(0.01, 0.1)

    @task
    def fetch(self) -> None:
        serial = popular_serial()
        with self.client.get(path_for(serial), name="GET /{ocsp}", catch_response=True) as r:
            check_answer(r, serial)


class Browser(HttpUser):
    weight = 2
    wait_time = between(0.05, 0.3)

    @task
    def ask(self) -> None:
        serial = popular_serial()
        nonce = os.urandom(16)
        with self.client.post(
            "/",
            data=request_for(serial, nonce),
            name="POST / (nonce)",
            headers={"Content-Type": "application/ocsp-request"},
            catch_response=True,
        ) as r:
            check_answer(r, serial, nonce)


class CdnRevalidation(FastHttpUser):
    weight = 1
    wait_time = between(0.2, 1.0)

    @task
    def revalidate(self) -> None:
        serial = random.choice(SERIALS)
        path = path_for(serial)
        with self.client.get(path, name="GET /{ocsp}", catch_response=True) as first:
            check_answer(first, serial)
            etag = first.headers.get("ETag")
        if not etag:
            return
        with self.client.get(
            path, headers={"If-None-Match": etag}, name="GET /{ocsp} (304)", catch_response=True
        ) as again:
            # a revocation in between legitimately changes the answer: then 200 is right
            if again.status_code == 304 or again.status_code == 200:
                again.success()
            else:
                again.failure(f"HTTP {again.status_code}")


class CrlPuller(FastHttpUser):
    weight = 1
    wait_time = between(1, 3)

    @task
    def pull(self) -> None:
        with self.client.get(CRL_PATH, name="GET /crl", catch_response=True) as r:
            if r.status_code != 200 or r.headers.get("Content-Type") != "application/pkix-crl":
                r.failure(f"HTTP {r.status_code} {r.headers.get('Content-Type')}")
                return
            etag = r.headers.get("ETag")
            r.success()
        with self.client.get(
            CRL_PATH,
            headers={"If-None-Match": etag or ""},
            name="GET /crl (revalidate)",
            catch_response=True,
        ) as again:
            if again.status_code in (200, 304):
                again.success()
            else:
                again.failure(f"HTTP {again.status_code}")


class CaPusher(HttpUser):
    """Issues certificates and revokes some of them in small bursts (its own serials, so
    the other users' expectations stay right)."""

    weight = 1
    wait_time = constant_pacing(2)

    @task
    def burst(self) -> None:
        base = random.getrandbits(100) << 8
        not_after = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400 * 90))
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        events = [
            {
                "type": "issued",
                "issuer": ISSUER_NAME,
                "serial": format(base + i, "x"),
                "not_after": not_after,
            }
            for i in range(10)
        ]
        events += [
            {
                "type": "revoked",
                "issuer": ISSUER_NAME,
                "serial": format(base + i, "x"),
                "revoked_at": now,
                "reason": "keyCompromise",
            }
            for i in range(0, 10, 3)
        ]
        with self.client.post(
            f"{CONTROL}/v1/events",  # the control plane has its own address
            json={"events": events},
            name="POST /v1/events",
            headers={"Authorization": f"Bearer {TOKEN}"},
            catch_response=True,
        ) as r:
            if r.status_code == 200 and r.json()["counts"]["applied"] == len(events):
                r.success()
            else:
                r.failure(f"HTTP {r.status_code}: {r.text[:200]}")
