"""`revocd report`: evidence for auditors and incident reports, from values.

What goes in (roles/report.py collects it from the store, the audit log and the
configuration): the revocations acknowledged in a time range with their ledger
timelines, the CRL publications in the range, the audit chain's verification result
and head, the digests of the configuration and the issuer certificates, and for an
incident the records of its serials.

What comes out: one dict (the JSON form), a CSV of the revocations (one row each, a
column per step), and one self-contained HTML page (no script, no external resource;
the timeline is an inline SVG) for people. Pure: no I/O, the time is an argument.
"""

import csv
import html
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..domain.records import CertRecord, Status
from .ledger import Timeline, step_kind


@dataclass
class Incident:
    """The serials of one incident (a list the CA is revoking) and their records."""

    name: str
    serials: dict[str, list[int]]  # issuer -> serials
    records: dict[tuple[str, int], CertRecord | None] = field(default_factory=dict)
    # (issuer, serial) -> acknowledgement ms, for those with a ledger
    acked: dict[tuple[str, int], int] = field(default_factory=dict)


@dataclass
class ReportInput:
    generated_at: float
    since: float
    until: float
    timelines: list[Timeline]
    publications: dict[str, list[dict[str, str]]]  # issuer -> CRL publications
    audit: dict[str, object]  # verification: ok, records, head_seq, head_hash, errors
    digests: dict[str, str]  # what -> sha256
    incident: Incident | None = None


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def step_summary(timelines: Sequence[Timeline]) -> dict[str, dict[str, object]]:
    """Per step kind: how many reached it, p50/p99/max seconds, how many missed their
    target."""
    by: dict[str, list[float]] = {}
    late: dict[str, int] = {}
    for t in timelines:
        for s in t.steps:
            kind = step_kind(s.name)
            by.setdefault(kind, []).append(s.seconds)
            if s.met is False:
                late[kind] = late.get(kind, 0) + 1
    out: dict[str, dict[str, object]] = {}
    for kind, values in sorted(by.items()):
        values.sort()
        out[kind] = {
            "count": len(values),
            "p50_seconds": round(_percentile(values, 50) or 0, 3),
            "p99_seconds": round(_percentile(values, 99) or 0, 3),
            "max_seconds": round(values[-1], 3),
            "late": late.get(kind, 0),
        }
    return out


def incident_counts(incident: Incident, now: float) -> dict[str, object]:
    """What CCADB incident reports ask for: how many certificates, how many revoked,
    not yet revoked, expired (and not revoked), unknown to revocd, and when the rest
    would be done at the recent pace (the last hour's revocations of these serials)."""
    total = revoked = expired = unknown = 0
    recent = 0
    for issuer, serials in incident.serials.items():
        for serial in serials:
            total += 1
            record = incident.records.get((issuer, serial))
            if record is None:
                unknown += 1
            elif record.status is Status.REVOKED:
                revoked += 1
                ack = incident.acked.get((issuer, serial))
                if ack is not None and ack / 1000 >= now - 3600:
                    recent += 1
            elif record.not_after is not None and record.not_after < now:
                expired += 1
    remaining = total - revoked - expired - unknown
    expected: str | None = None
    if remaining == 0:
        expected = "complete"
    elif recent:
        expected = _iso(now + remaining / (recent / 3600))
    return {
        "name": incident.name,
        "certificates": total,
        "revoked": revoked,
        "not_yet_revoked": remaining,
        "expired_not_revoked": expired,
        "unknown_to_revocd": unknown,
        "revoked_last_hour": recent,
        "expected_completion": expected,
    }


def build(data: ReportInput) -> dict[str, object]:
    tl = sorted(data.timelines, key=lambda t: (t.ack_ms, t.issuer, t.serial))
    met = {
        "ocsp_within_24h": sum(1 for t in tl if t.ocsp_within_24h is True),
        "ocsp_late": sum(1 for t in tl if t.ocsp_within_24h is False),
        "crl_within_24h": sum(1 for t in tl if t.crl_within_24h is True),
        "crl_late": sum(1 for t in tl if t.crl_within_24h is False),
        "pending": sum(1 for t in tl if t.ocsp_within_24h is None or t.crl_within_24h is None),
    }
    out: dict[str, object] = {
        "report": "revocd propagation and revocation evidence",
        "generated_at": _iso(data.generated_at),
        "range": {"since": _iso(data.since), "until": _iso(data.until)},
        "revocations": len(tl),
        "br_deadlines": met,
        "steps": step_summary(tl),
        "timelines": [t.to_json() for t in tl],
        "crl_publications": data.publications,
        "audit_chain": data.audit,
        "config_digests": data.digests,
    }
    if data.incident is not None:
        out["incident"] = incident_counts(data.incident, data.generated_at)
    return out


STEP_COLUMNS = ("signed", "served", "purge", "crl", "probed")


def to_csv(data: ReportInput) -> str:
    """One row per revocation: its times and each step's delay in seconds."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "issuer",
            "serial",
            "acknowledged_at",
            "revoked_at",
            "reason",
            *(f"{c}_seconds" for c in STEP_COLUMNS),
            "crl_number",
            "br_ocsp_within_24h",
            "br_crl_within_24h",
        ]
    )
    for t in sorted(data.timelines, key=lambda t: (t.ack_ms, t.issuer, t.serial)):
        first: dict[str, float] = {}
        for s in t.steps:
            kind = step_kind(s.name)
            if s.name.endswith(":req"):
                continue
            first[kind] = min(first.get(kind, s.seconds), s.seconds)
        w.writerow(
            [
                t.issuer,
                format(t.serial, "x"),
                _iso(t.ack_ms / 1000),
                _iso(t.revoked_at) if t.revoked_at is not None else "",
                t.reason or "",
                *(f"{first[c]:.3f}" if c in first else "" for c in STEP_COLUMNS),
                t.crl_number if t.crl_number is not None else "",
                _tri(t.ocsp_within_24h),
                _tri(t.crl_within_24h),
            ]
        )
    return buf.getvalue()


def _tri(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


_COLORS = {
    "signed": "#1f77b4",
    "served": "#2ca02c",
    "purge": "#ff7f0e",
    "crl": "#9467bd",
    "probed": "#d62728",
}


def timeline_svg(timelines: Sequence[Timeline], width: int = 900, height: int = 320) -> str:
    """Each revocation's steps as dots: x the acknowledgement time, y the delay (log
    scale, 0.01 s to a day), colour the step. Drawn, not scripted."""
    import math

    pad = 50
    dots = []
    if timelines:
        t0 = min(t.ack_ms for t in timelines)
        t1 = max(t.ack_ms for t in timelines)
        span = max(1, t1 - t0)
        lo, hi = math.log10(0.01), math.log10(86400)
        for t in timelines[:20000]:
            x = pad + (t.ack_ms - t0) / span * (width - 2 * pad)
            for s in t.steps:
                kind = step_kind(s.name)
                if kind not in _COLORS or s.name.endswith(":req"):
                    continue
                v = min(max(s.seconds, 0.01), 86400)
                y = height - pad - (math.log10(v) - lo) / (hi - lo) * (height - 2 * pad)
                dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{_COLORS[kind]}"/>')
    ticks = []
    for label, v in (("10 ms", 0.01), ("1 s", 1), ("1 min", 60), ("1 h", 3600), ("24 h", 86400)):
        import math as m

        y = height - pad - (m.log10(v) + 2) / (m.log10(86400) + 2) * (height - 2 * pad)
        ticks.append(
            f'<line x1="{pad}" x2="{width - pad}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="4" y="{y + 4:.1f}" font-size="11">{label}</text>'
        )
    legend = "".join(
        f'<circle cx="{pad + 20 + i * 110}" cy="14" r="5" fill="{c}"/>'
        f'<text x="{pad + 30 + i * 110}" y="18" font-size="12">{k}</text>'
        for i, (k, c) in enumerate(_COLORS.items())
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="propagation timeline">'
        f'<rect width="100%" height="100%" fill="#fff"/>{"".join(ticks)}{legend}'
        f"{''.join(dots)}"
        f'<text x="{width / 2 - 120}" y="{height - 10}" font-size="12">'
        f"acknowledgement time (x), delay to each step (y, log)</text></svg>"
    )


def to_html(data: ReportInput) -> str:
    report = build(data)
    e = html.escape

    def table(rows: Sequence[Sequence[object]], head: Sequence[str]) -> str:
        th = "".join(f"<th>{e(h)}</th>" for h in head)
        body = "".join(
            "<tr>" + "".join(f"<td>{e('' if c is None else str(c))}</td>" for c in r) + "</tr>"
            for r in rows
        )
        return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"

    steps = report["steps"]
    assert isinstance(steps, dict)
    step_rows = [
        [k, v["count"], v["p50_seconds"], v["p99_seconds"], v["max_seconds"], v["late"]]
        for k, v in steps.items()
    ]
    br = report["br_deadlines"]
    assert isinstance(br, dict)
    audit = data.audit
    pubs = [
        [
            issuer,
            p.get("shard"),
            p.get("number"),
            _iso(int(p.get("published_ms", "0")) / 1000),
            p.get("origins"),
            p.get("new_entries"),
        ]
        for issuer, items in sorted(data.publications.items())
        for p in items
    ]
    rev_rows = []
    for t in sorted(data.timelines, key=lambda t: t.ack_ms)[:2000]:
        rev_rows.append(
            [
                t.issuer,
                format(t.serial, "x"),
                _iso(t.ack_ms / 1000),
                ", ".join(f"{s.name} {s.seconds:.2f}s" for s in t.steps),
                _tri(t.ocsp_within_24h),
                _tri(t.crl_within_24h),
            ]
        )
    errors = audit.get("errors")
    errors = list(errors) if isinstance(errors, list) else []
    incident = ""
    if "incident" in report:
        inc = report["incident"]
        assert isinstance(inc, dict)
        incident = "<h2>Incident</h2>" + table([[k, v] for k, v in inc.items()], ["", ""])
    more = ""
    if len(data.timelines) > 2000:
        more = f"<p>First 2,000 of {len(data.timelines)} revocations; the CSV has all.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>revocd report {e(_iso(data.since) or "")} to {e(_iso(data.until) or "")}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
.ok {{ color: #176e1f; }} .bad {{ color: #b00020; font-weight: bold; }}
</style></head><body>
<h1>revocd: revocation and propagation evidence</h1>
<p>Range {e(_iso(data.since) or "")} to {e(_iso(data.until) or "")}
(generated {e(str(report["generated_at"]))}): {report["revocations"]} revocation(s).</p>
<h2>BR deadlines (OCSP and CRL updated within 24 hours)</h2>
{table([[k, v] for k, v in br.items()], ["", "revocations"])}
<h2>Propagation steps (seconds after acknowledgement)</h2>
{table(step_rows, ["step", "count", "p50", "p99", "max", "over target"])}
<h2>Timeline</h2>
{timeline_svg(data.timelines)}
{incident}
<h2>Audit chain</h2>
<p class="{"ok" if audit.get("ok") else "bad"}">{"verified" if audit.get("ok") else "NOT VERIFIED"}:
{e(str(audit.get("records")))} record(s), head seq {e(str(audit.get("head_seq")))},
head hash <code>{e(str(audit.get("head_hash")))}</code></p>
{table([[f] for f in errors], ["problems"]) if errors else ""}
<h2>Configuration digests (SHA-256)</h2>
{table([[k, v] for k, v in sorted(data.digests.items())], ["file", "sha256"])}
<h2>CRL publications</h2>
{table(pubs, ["issuer", "shard", "CRL number", "published", "origins", "new entries"])}
<h2>Revocations</h2>
{more}
{table(rev_rows, ["issuer", "serial", "acknowledged", "steps", "OCSP 24h", "CRL 24h"])}
</body></html>
"""
