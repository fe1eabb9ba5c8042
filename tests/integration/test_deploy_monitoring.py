"""deploy/prometheus and deploy/grafana: promtool accepts and unit-tests the alert rules,
the dashboard loads, its queries parse, and every metric they name is one revocd exports."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import responder.observability.metrics  # noqa: F401  (registers every revocd metric)

from ..conftest import require_tool

DEPLOY = Path(__file__).parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "revocd.json"
METRIC = re.compile(r"\b(revocd_[a-z0-9_]+)")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def exported_names() -> set[str]:
    names = set()
    for metric in REGISTRY.collect():
        if not metric.name.startswith("revocd_"):
            continue
        names.add(metric.name)
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
        }.get(metric.type, ())
        names.update(metric.name + s for s in suffixes)
    return names


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_promtool_accepts_the_alert_rules():
    done = promtool("check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 29 rules found" in done.stdout


def test_alert_rules_fire_as_their_unit_tests_say():
    done = promtool("test", "rules", "alerts.test.yml", cwd=ALERTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_alerts_the_issue_names_exist():
    text = ALERTS.read_text()
    for alert in (
        "RevocdAnswersCloseToExpiry",
        "RevocdCrlNotPublishedOnTime",
        "RevocdSignerQueueSaturated",
        "RevocdStoreUnreachable",
        "RevocdResponderCertExpiring",
    ):
        assert f"alert: {alert}\n" in text
        assert f"alertname: {alert}\n" in (ALERTS.parent / "alerts.test.yml").read_text()


def test_dashboard_loads_and_is_well_formed():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "revocd" and dash["schemaVersion"] >= 36
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    graphs = [p for p in panels if p["type"] != "row"]
    assert len(graphs) >= 15
    for p in graphs:
        assert p["targets"] and p["title"], p
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "instance"} <= variables


def test_dashboard_queries_parse(tmp_path):
    """promtool parses each query (with Grafana's variables filled in) as a recording rule."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"dashboard:query{i}",
                        "expr": e.replace("$__rate_interval", "5m").replace("$instance", ".*"),
                    }
                    for i, e in enumerate(dashboard_exprs())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.json"  # YAML is a superset of JSON
    path.write_text(json.dumps(rules))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_named_is_exported(source):
    text = ALERTS.read_text() if source == "alerts" else "\n".join(dashboard_exprs())
    named = set(METRIC.findall(text))
    assert named, "no revocd metric named at all"
    unknown = named - exported_names()
    assert not unknown, f"{source} names metrics revocd does not export: {sorted(unknown)}"


def test_dashboard_covers_the_design_notes_metrics():
    """Requests by result, latency, cache hit ratio, signer batches and queue, answer age,
    presign backlog, CRL publish results and age, ingest results, propagation time."""
    text = "\n".join(dashboard_exprs())
    for name in (
        "revocd_ocsp_requests_total",
        "revocd_ocsp_request_seconds_bucket",
        "revocd_answer_source_total",
        "revocd_signer_batch_size_bucket",
        "revocd_signer_queue_depth",
        "revocd_answer_soonest_expiry_seconds",
        "revocd_presign_backlog",
        "revocd_crl_publish_total",
        "revocd_crl_last_published_timestamp_seconds",
        "revocd_events_total",
        "revocd_revocation_propagation_seconds_bucket",
    ):
        assert name in text, name
