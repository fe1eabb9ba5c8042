"""The mass-revocation drill (loadtests/drill_mass_revocation.py) at full size: 100,000
revocations pushed for one issuer through the control plane are all answered `revoked`
over OCSP and all listed on the published CRL, which openssl verifies."""

import json
import subprocess
import sys
from pathlib import Path

from ..conftest import require_tool

DRILL = Path(__file__).parents[2] / "loadtests" / "drill_mass_revocation.py"
REVOCATIONS = 100_000


def test_100k_revocations_all_answered_revoked_and_on_the_crl(tmp_path):
    require_tool("openssl")
    out = tmp_path / "drill.json"
    done = subprocess.run(
        [
            sys.executable,
            str(DRILL),
            "--revocations",
            str(REVOCATIONS),
            "--dir",
            str(tmp_path / "demo"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["revocations"] == REVOCATIONS
    assert result["ocsp_counts"] == {"revoked": REVOCATIONS}
    assert result["ocsp_recheck_counts"] == {"revoked": REVOCATIONS}
    # Every pushed serial is on the CRL, plus what the demo itself revoked at start.
    assert result["crl_entries"] >= REVOCATIONS
    assert result["crl_verified"], result["crl_verify_output"]
