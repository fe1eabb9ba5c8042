"""Publishing CRLs to S3-compatible storage, against a real S3 HTTP server (moto's) started
here: conditional writes, the checks, and two generators racing."""

import os
import socket
import subprocess
import sys
import time

import pytest
import trio

from crlgen.builder import CrlIssuer, Shard, build_crl
from crlgen.publish import Checks, PublishRefused, S3Origin
from responder.ocsp.types import RevocationReason
from responder.signing import SoftwareSigner
from responder.store import CertRecord, Status
from responder.store.embedded import free_port

NOW = int(time.time())
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "revocd-test",
    "AWS_SECRET_ACCESS_KEY": "revocd-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "moto did not start"
            time.sleep(0.2)
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    yield f"http://127.0.0.1:{port}"
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def origin(s3_endpoint):
    bucket = f"crls-{time.monotonic_ns()}"
    o = S3Origin(bucket, "pki/", endpoint_url=s3_endpoint, region="us-east-1")
    o.client.create_bucket(Bucket=bucket)
    return o


def crl(test_pki, serials, number):
    issuer = CrlIssuer(test_pki.issuer.cert, SoftwareSigner(test_pki.issuer.key))
    records = [
        CertRecord(
            s,
            Status.REVOKED,
            NOW + 86400,
            2,
            NOW,
            0,
            revoked_at=NOW - 60,
            reason=RevocationReason.KEY_COMPROMISE,
        )
        for s in serials
    ]
    return trio.run(build_crl, issuer, Shard.from_records(records), number, NOW, NOW + 86400)


def test_publish_then_replace_conditionally(origin, test_pki):
    key = test_pki.issuer.cert.public_key()
    first = crl(test_pki, [1, 2], 10)
    origin.publish("alpha", "alpha.crl", first, key, Checks())
    stored = origin.client.get_object(Bucket=origin.bucket, Key="pki/alpha.crl")
    assert stored["ContentType"] == "application/pkix-crl"
    second = crl(test_pki, [1, 2, 3], 11)
    origin.publish("alpha", "alpha.crl", second, key, Checks())
    assert origin.current("alpha.crl") == second
    with pytest.raises(PublishRefused) as info:  # the checks run against what S3 holds
        origin.publish("alpha", "alpha.crl", crl(test_pki, [1, 2, 3], 9), key, Checks())
    assert info.value.check == "number"
    assert origin.current("alpha.crl") == second


def test_two_generators_racing_one_wins(origin, test_pki, s3_endpoint):
    key = test_pki.issuer.cert.public_key()
    base = crl(test_pki, [1], 20)
    origin.publish("alpha", "alpha.crl", base, key, Checks())

    class Late(S3Origin):
        """Generator A: it read the CRL before generator B replaced it."""

        def __init__(self, other: S3Origin, seen):
            super().__init__(other.bucket, other.prefix, client=other.client)
            self.seen = seen

        def current_with_etag(self, name):
            return self.seen

    seen_by_a = origin.current_with_etag("alpha.crl")
    b_crl = crl(test_pki, [1, 2], 21)
    origin.publish("alpha", "alpha.crl", b_crl, key, Checks())  # B wins
    a_crl = crl(test_pki, [1, 5], 22)
    with pytest.raises(PublishRefused) as info:
        Late(origin, seen_by_a).publish("alpha", "alpha.crl", a_crl, key, Checks())
    assert info.value.check == "race"
    assert origin.current("alpha.crl") == b_crl  # B's CRL is not overwritten


def test_first_publication_cannot_overwrite(origin, test_pki):
    """If-None-Match: two generators both publishing the first CRL: one is refused."""
    key = test_pki.issuer.cert.public_key()

    class Blind(S3Origin):
        def current_with_etag(self, name):
            return None

    origin.publish("alpha", "alpha.crl", crl(test_pki, [1], 30), key, Checks())
    with pytest.raises(PublishRefused, match="race"):
        Blind(origin.bucket, origin.prefix, client=origin.client).publish(
            "alpha", "alpha.crl", crl(test_pki, [2], 31), key, Checks()
        )
