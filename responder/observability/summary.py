"""A periodic operational summary line per process: what happened since the last one.

Dashboards show the same from Prometheus; this line is for the log pipeline, where an
operator reading one process's log sees its request rate, results, latency percentiles,
cache hit ratio, errors, limits hit and queue depths without a metrics server.
"""

import logging
from collections.abc import Iterable
from typing import Any

import trio
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

log = logging.getLogger("revocd.ops")

# Counters summed by one label (None: the total) and reported as the interval's change.
COUNTERS: dict[str, tuple[str, str | None]] = {
    "revocd_ocsp_requests": ("requests", "result"),
    "revocd_answer_source": ("answers", "source"),
    "revocd_http_limit_hits": ("limits_hit", "limit"),
    "revocd_store_errors": ("store_errors", "operation"),
    "revocd_sign_errors": ("sign_errors", "kind"),
    "revocd_signer_queue_full": ("signer_queue_full", None),
    "revocd_signer_timeouts": ("signer_timeouts", None),
    "revocd_events": ("events", "result"),
    "revocd_presigned": ("presigned", "why"),
    "revocd_presign_errors": ("presign_errors", "stage"),
    "revocd_crl_publish": ("crl_publish", "result"),
    "revocd_audit_write_failures": ("audit_write_failures", None),
}
GAUGES = {
    "revocd_http_connections": "connections",
    "revocd_signer_queue_depth": "signer_queue_depth",
    "revocd_cache_entries": "cache_entries",
    "revocd_presign_backlog": "presign_backlog",
}
LATENCY = "revocd_ocsp_request_seconds"

Snapshot = dict[str, Any]


def snapshot(metrics: Iterable[Metric] | None = None) -> Snapshot:
    out: Snapshot = {"buckets": {}}
    for metric in metrics if metrics is not None else REGISTRY.collect():
        if metric.name in COUNTERS:
            field, label = COUNTERS[metric.name]
            sums: dict[str, float] = out.setdefault(field, {})
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    key = sample.labels.get(label, "") if label else ""
                    sums[key] = sums.get(key, 0.0) + sample.value
        elif metric.name in GAUGES:
            out[GAUGES[metric.name]] = sum(s.value for s in metric.samples)
        elif metric.name == LATENCY:
            for sample in metric.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    out["buckets"][bound] = out["buckets"].get(bound, 0.0) + sample.value
    return out


def _quantile(buckets: dict[float, float], q: float) -> float | None:
    """Upper bound of the bucket holding quantile q (cumulative bucket counts)."""
    if not buckets:
        return None
    total = buckets[max(buckets)]
    if total <= 0:
        return None
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return bound
    return None


def summarize(before: Snapshot, after: Snapshot, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"interval_seconds": round(seconds, 1)}
    for field, _ in COUNTERS.values():
        old, new = before.get(field, {}), after.get(field, {})
        delta = {k: int(v - old.get(k, 0.0)) for k, v in new.items() if v - old.get(k, 0.0) > 0}
        if delta:
            out[field] = delta[""] if list(delta) == [""] else delta
    requests = sum(out.get("requests", {}).values()) if isinstance(out.get("requests"), dict) else 0
    out["requests_per_second"] = round(requests / seconds, 1) if seconds > 0 else 0.0
    answers = out.get("answers")
    if isinstance(answers, dict) and sum(answers.values()):
        out["cache_hit_ratio"] = round(answers.get("cache", 0) / sum(answers.values()), 3)
    buckets = {b: n - before["buckets"].get(b, 0.0) for b, n in after["buckets"].items()}
    for name, q in (("latency_p50_ms", 0.5), ("latency_p99_ms", 0.99)):
        bound = _quantile(buckets, q)
        if bound is not None:
            out[name] = "+Inf" if bound == float("inf") else round(bound * 1000, 2)
    for name in GAUGES.values():
        if name in after:
            out[name] = int(after[name])
    return out


async def log_summaries(interval: float) -> None:
    """Owned by the data plane (or the service) nursery; one line every `interval`."""
    before = snapshot()
    while True:
        await trio.sleep(interval)
        after = snapshot()
        log.info("ops summary", extra={"fields": summarize(before, after, interval)})
        before = after
