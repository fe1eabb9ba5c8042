"""Short-lived and expired certificates through a running revocd: an answer never
outlives the certificate (what Caddy and other stapling servers check) unless that
would take it under the BR's 8 hours, and an expired certificate gets the issuer's
`expired` policy (alpha: unauthorized; beta: its last status)."""

import time

import pytest
from asn1crypto import ocsp as asn1_ocsp

from ..served import now_iso, start_served

pytestmark = pytest.mark.slow


def next_update(der: bytes) -> float:
    parsed = asn1_ocsp.OCSPResponse.load(der)
    single = parsed.basic_ocsp_response["tbs_response_data"]["responses"][0]
    return single["next_update"].native.timestamp()


def test_next_update_capped_and_expired_policy(tmp_path, test_pki):
    served = start_served(tmp_path, test_pki, workers=1, alpha_extra='expired = "unauthorized"')
    try:
        two_days = int(time.time()) + 2 * 86400
        status, body = served.push(
            {"type": "issued", "issuer": "alpha", "serial": "51", "not_after": now_iso(2 * 86400)},
            {"type": "issued", "issuer": "alpha", "serial": "52", "not_after": now_iso(3600)},
            {"type": "issued", "issuer": "alpha", "serial": "53", "not_after": now_iso(-60)},
            {"type": "issued", "issuer": "beta", "serial": "53", "not_after": now_iso(-60)},
            {"type": "issued", "issuer": "alpha", "serial": "54", "not_after": now_iso(30 * 86400)},
        )
        assert status == 200, body
        answered, der = served.ocsp_post("alpha", 0x51, nonce=b"n" * 16)
        assert answered == "good" and abs(next_update(der) - two_days) <= 1
        # an hour left: 8 hours from thisUpdate, the BR minimum
        answered, der = served.ocsp_post("alpha", 0x52, nonce=b"m" * 16)
        assert answered == "good"
        this_update = (
            asn1_ocsp.OCSPResponse.load(der)
            .basic_ocsp_response["tbs_response_data"]["responses"][0]["this_update"]
            .native.timestamp()
        )
        assert next_update(der) - this_update == 8 * 3600 - 1
        # a month left: the schedule's 96 hours
        answered, der = served.ocsp_post("alpha", 0x54)
        assert next_update(der) - time.time() > 90 * 3600
        # expired: alpha answers unauthorized, beta its last status
        assert served.ocsp_post("alpha", 0x53)[0] == "unauthorized"
        assert served.ocsp_post("beta", 0x53)[0] == "good"
    finally:
        served.proc.stop()
