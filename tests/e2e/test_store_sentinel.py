"""revocd on a Sentinel-managed store (1 primary, 1 replica, 3 sentinels, real
valkey-server processes): starts from a sentinel URL (at 3079c4f it did not start at
all) and survives the primary's death."""

import time
from pathlib import Path

import pytest

from responder.store import ValkeyProcess

from ..served import Served, start_served
from ..valkey import sentinel_primary, start_sentinel_group
from .test_store_faults import Pusher, issued, wait_applied


def revoked(serial: int) -> dict:
    return {
        "type": "revoked",
        "issuer": "alpha",
        "serial": format(serial, "x"),
        "revoked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)),
        "reason": "keyCompromise",
    }


def served_on(url: str, tmp_path: Path, test_pki: object) -> Served:
    """`revocd serve` (one worker, no pre-signer) on an external store whose writes are
    acknowledged once on a replica too (`store.replicas = 1`)."""
    return start_served(
        tmp_path / "revocd",
        test_pki,
        workers=1,
        extra=f'[store]\nurl = "{url}"\nreplicas = 1\n',
        args=("--no-presign",),
    )


@pytest.mark.slow
def test_sentinel_failover(tmp_path, test_pki):
    nodes, sentinels = start_sentinel_group(tmp_path / "group")
    primary, replica = nodes
    url = "redis+sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in sentinels) + "/revocd"
    served = served_on(url, tmp_path, test_pki)
    try:
        before, uncached = 0x5E0001, 0x5E0002
        assert served.push(issued(before), issued(uncached))[0] == 200
        assert served.ocsp_post("alpha", before)[0] == "good"
        with Pusher(served, 0x600000) as pusher:
            time.sleep(1)
            primary.kill()
            killed = time.monotonic()
            while sentinel_primary(sentinels[0], "revocd") != replica.port:
                assert time.monotonic() - killed < 30, "no failover"
                time.sleep(0.1)
            promoted = time.monotonic()
            # reads of what was acknowledged (so on the replica) recover within 10 s
            while served.ocsp_post("alpha", uncached)[0] != "good":
                assert time.monotonic() - promoted < 10, "reads did not recover"
                time.sleep(0.1)
            reads_after = time.monotonic() - promoted
            # With store.replicas = 1 and the only replica promoted, nothing can be
            # acknowledged until the old primary is back, as a replica of the new one.
            # It comes back as the new primary's replica (what the sentinels would make
            # of it too, after their own delay).
            time.sleep(1)
            restarted = ValkeyProcess(
                primary.directory,
                primary.port,
                extra_config={**primary.extra_config, "replicaof": f"127.0.0.1 {replica.port}"},
            ).start()
            rejoined = time.monotonic()
            writes_after = wait_applied(served, 0x5E0003, timeout=30)
            time.sleep(0.5)
        assert pusher.slowest <= 2.0 + 1.0 + 0.5, pusher.slowest  # durability + 1 s
        assert writes_after <= 10, writes_after
        assert len(pusher.acked) > 20
        missing = [
            s
            for s in pusher.acked
            if served.control("GET", f"/v1/issuers/alpha/certificates/{s:x}")[0] != 200
        ]
        assert not missing, f"{len(missing)} acknowledged events lost"
        # a revocation pushed now reaches OCSP within 1 s
        assert served.push(revoked(before))[0] == 200
        pushed = time.monotonic()
        while served.ocsp_post("alpha", before)[0] != "revoked":
            assert time.monotonic() - pushed < 1.0, "revocation not visible within 1 s"
            time.sleep(0.02)
        print(
            f"reads recovered {reads_after:.1f} s after promotion; writes "
            f"{writes_after:.1f} s after the old primary rejoined "
            f"({rejoined - killed:.1f} s after the kill)"
        )
    finally:
        assert served.proc.stop() == 0, served.proc.output
        for s in sentinels:
            s.stop()
        for node in (replica, locals().get("restarted")):
            if node is not None:
                node.stop()
