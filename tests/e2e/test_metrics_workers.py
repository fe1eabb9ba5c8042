"""/metrics with several data plane workers sums every process; logs are JSON lines with
a periodic summary from each worker."""

import json
import re
import time

import pytest

from ..served import now_iso, start_served

REQUESTS = 400


@pytest.fixture(scope="module")
def served(tmp_path_factory, test_pki):
    s = start_served(
        tmp_path_factory.mktemp("workers"),
        test_pki,
        workers=2,
        extra="",
        args=(),
        server_extra="log_summary_seconds = 1\n",
    )
    yield s
    assert s.proc.stop() == 0, s.proc.output


def sample(body: str, name: str, **labels: str) -> list[float]:
    out = []
    for line in body.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            out.append(float(line.rsplit(" ", 1)[1]))
    return out


def test_counts_from_both_workers_add_up(served):
    served.push(
        {"type": "issued", "issuer": "alpha", "serial": "77", "not_after": now_iso(86400 * 30)}
    )
    for _ in range(REQUESTS):  # a new connection each: the kernel spreads them over workers
        status, _ = served.ocsp_post("alpha", 0x77)
        assert status == "good"
    deadline = time.monotonic() + 10
    while True:  # each worker publishes its fast-path counts once a second
        _, body, _ = served.control("GET", "/metrics", token=None)
        total = sum(sample(body["raw"], "revocd_ocsp_requests_total", method="POST"))
        if total >= REQUESTS or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert total == REQUESTS
    latency = sample(body["raw"], "revocd_ocsp_request_seconds_count")
    assert latency == [REQUESTS]
    # One series per gauge, not one per process.
    assert len(sample(body["raw"], "revocd_http_connections")) == 1
    expiry = sample(body["raw"], "revocd_responder_cert_expiry_seconds", issuer="alpha")
    assert len(expiry) == 1 and expiry[0] > 0
    assert "pid=" not in body["raw"]


def test_logs_are_json_lines_with_a_summary_per_worker(served):
    deadline = time.monotonic() + 15
    busy: set[str] = set()
    while time.monotonic() < deadline and len(busy) < 2:
        for line in list(served.proc.lines):
            if '"ops summary"' in line:
                record = json.loads(line)
                if record.get("worker") is not None and record.get("requests"):
                    busy.add(record["worker"])
        time.sleep(0.2)
    assert busy == {"0", "1"}, "both workers should have answered some of the requests"
    parsed = 0
    for line in served.proc.lines:
        if line.startswith("{"):
            record = json.loads(line)
            assert {"ts", "level", "logger", "msg", "pid"} <= record.keys()
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])
            parsed += 1
    assert parsed > 5
    summary = next(json.loads(x) for x in served.proc.lines if '"requests_per_second"' in x)
    assert summary["interval_seconds"] == 1.0
