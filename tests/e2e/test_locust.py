"""The locust scenarios run headless against `revocd demo` for 60 s with no failures
(`unknown` for serials never issued is an expected answer, not a failure)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

LOCUSTFILE = Path(__file__).parents[2] / "loadtests" / "locustfile.py"


def test_locust_scenarios_against_the_demo(demo, tmp_path):
    env = {**os.environ, "REVOCD_DEMO_DIR": str(demo.dir), "REVOCD_CONTROL": demo.control}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "-u",
            "20",
            "-r",
            "10",
            "-t",
            "60s",
            "--host",
            demo.url,
            "--only-summary",
            "--csv",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {row["Name"]: row for row in csv.DictReader((tmp_path / "run_stats.csv").open())}
    total = rows["Aggregated"]
    assert int(total["Failure Count"]) == 0
    assert int(total["Request Count"]) > 1000
    for name in (
        "GET /{ocsp}",
        "POST / (nonce)",
        "GET /{ocsp} (304)",
        "GET /crl",
        "POST /v1/events",
    ):
        assert int(rows[name]["Request Count"]) > 0, name
