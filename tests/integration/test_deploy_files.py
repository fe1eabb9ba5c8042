"""deploy/: the container image, compose file, Kubernetes manifests and systemd units.

No container engine or cluster runs here, so these are checked for what can be checked
without one: every file they mount exists, every revocd command line they run parses with
revocd's own CLI, the configuration they ship loads with revocd's own parser, Redis runs
with AOF always, the workloads are non-root with read-only root filesystems and probe
/readyz, the control plane is kept private, Prometheus accepts its configuration, and
systemd accepts the units."""

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from responder.cli import build_parser
from responder.config import parse_config, resolve_config

from ..conftest import require_tool

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"


def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def workloads() -> dict[str, dict]:
    return {
        d["metadata"]["name"]: d for d in k8s_docs() if d["kind"] in ("Deployment", "StatefulSet")
    }


def parses(argv: list[str]) -> None:
    """revocd's own parser accepts the command line (argparse exits on anything unknown)."""
    args = build_parser().parse_args(argv)
    assert getattr(args, "handler", None) is not None, argv


def test_dockerfile_builds_what_exists_and_runs_unprivileged():
    text = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for item in source.split():
            assert (ROOT / item).exists(), item
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert 'ENTRYPOINT ["revocd"]' in text
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd is not None
    parses(yaml.safe_load(cmd.group(1)))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11" and "FROM python:3.11" in text
    assert "REVOCD_REQUIRE_EXT=1" in text  # the image never ships without the Cython paths


def test_compose_services_mounts_and_commands():
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"revocd", "redis", "prometheus", "grafana", "nginx"} <= services.keys()
    revocd = services["revocd"]
    assert revocd["read_only"] is True and revocd["user"].split(":")[0] != "0"
    parses(revocd["command"])
    assert (ROOT / revocd["build"]["dockerfile"]).exists()
    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis and "--appendfsync always" in redis
    assert "--maxmemory-policy noeviction" in redis
    for name, service in services.items():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("."):
                assert (DEPLOY / "compose" / host).resolve().exists(), (name, host)
    # The control plane and the dashboards are bound to loopback; only the CDN is public.
    for name in ("revocd", "prometheus", "grafana"):
        for port in services[name].get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    template = (DEPLOY / "nginx" / "revocd-cdn.conf.template").read_text()
    needed = set(re.findall(r"\$\{(REVOCD_[A-Z_]+)\}", template))
    assert needed and needed <= services["nginx"]["environment"].keys()


def test_shipped_config_loads_with_revocd(tmp_path, test_pki):
    pki = tmp_path / "pki"
    pki.mkdir()
    test_pki.issuer.write(pki / "issuing-ca-1.pem", pki / "issuing-ca-1.key")
    test_pki.responder.write(pki / "ocsp-responder.pem", pki / "ocsp-responder.key")
    raw = tomllib.loads((DEPLOY / "config" / "revocd.toml").read_text())
    config = resolve_config(parse_config(raw, base=tmp_path))
    assert config.store.url.startswith("redis://")
    assert config.server.host == "0.0.0.0" and config.server.workers == 2
    assert config.audit_file == Path("/var/lib/revocd/audit/audit.log")
    assert "issuing-ca-1" in config.issuers and config.issuers["issuing-ca-1"].crl is not None


def test_prometheus_config_is_accepted(tmp_path):
    promtool = require_tool("promtool")
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(
        text.replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml"))
    )
    done = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_kubernetes_manifests():
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (DEPLOY / "kubernetes" / resource).exists(), resource
    found = workloads()
    assert {"revocd-data", "revocd-control", "revocd-presign", "revocd-crl", "redis"} <= set(found)
    assert found["revocd-data"]["kind"] == "Deployment"
    assert found["revocd-presign"]["kind"] == found["revocd-crl"]["kind"] == "Deployment"
    for name, workload in found.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            if name.startswith("revocd"):
                parses(container["args"])
    data = found["revocd-data"]["spec"]["template"]["spec"]["containers"][0]
    assert data["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "--no-presign" in data["args"] and "--no-crl" in data["args"]
    redis = " ".join(found["redis"]["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--appendfsync always" in redis


def test_network_policy_keeps_the_control_plane_private():
    policies = {d["metadata"]["name"]: d for d in k8s_docs() if d["kind"] == "NetworkPolicy"}
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    # Port 8081 is opened only to the CA's labelled pods (events) and monitoring (metrics).
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if 8081 not in ports:
                continue
            sources = rule.get("from")
            assert sources, f"{name} opens 8081 to everyone"
            for source in sources:
                labels = source.get("podSelector", {}).get("matchLabels", {})
                ns = source.get("namespaceSelector", {}).get("matchLabels", {})
                assert labels == {"revocd.io/ca-client": "true"} or ns == {
                    "kubernetes.io/metadata.name": "monitoring"
                }, (name, source)
    public = policies["revocd-data-public"]["spec"]
    assert public["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "data-plane"
    assert [p["port"] for p in public["ingress"][0]["ports"]] == [8080]


@pytest.mark.parametrize("unit", ["revocd.service", "revocd-presign.service", "revocd-crl.service"])
def test_systemd_units_verify(tmp_path, unit):
    analyze = require_tool("systemd-analyze")
    text = (DEPLOY / "systemd" / unit).read_text()
    exec_start = re.search(r"^ExecStart=(.+)$", text, re.M)
    assert exec_start is not None
    argv = shlex.split(exec_start.group(1))
    assert argv[0] == "/opt/revocd/bin/revocd"
    parses(argv[1:])
    # systemd checks the binary exists; this machine has no /opt/revocd.
    (tmp_path / unit).write_text(text.replace("/opt/revocd/bin/revocd", "/bin/true"))
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), (
        done.stdout + done.stderr
    )
