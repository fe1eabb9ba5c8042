"""The runbook links in the alert rules and the docs point at headings that exist, and
every metric revocd exports is described in docs/operations.md."""

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

import responder.observability.metrics as metrics

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            text = re.sub(r"[^\w\- ]", "", text)
            out.add(text.replace(" ", "-"))
    return out


def test_links_to_doc_sections_resolve():
    sources = [ROOT / "deploy" / "prometheus" / "alerts.yml", *DOCS.glob("*.md")]
    checked = 0
    for source in sources:
        for target, anchor in re.findall(r"([a-z_]+\.md)#([a-z0-9\-]+)", source.read_text()):
            path = DOCS / target
            assert path.exists(), (source.name, target)
            assert anchor in anchors(path), f"{source.name}: {target}#{anchor} has no heading"
            checked += 1
    assert checked > 20


def test_every_metric_is_described_in_operations():
    text = (DOCS / "operations.md").read_text()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name + ("_total" if value._type == "counter" else "")
            assert f"`{name}`" in text, name
