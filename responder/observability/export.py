"""Prometheus exposition for one process or for a process with data plane workers.

With `server.workers > 1` every worker counts in its own process. prometheus_client's
multiprocess mode keeps each process's values in memory-mapped files in one directory
and the control plane's /metrics sums them: counters and histograms add up across
workers (and keep the counts of workers that exited), gauges use the mode declared in
responder/observability/metrics.py (connections and queue depths add up over live
processes; expiry times take the minimum). The mode must be chosen before
prometheus_client is imported, so `revocd serve` enables it first thing when it will
start workers.
"""

import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger("revocd.metrics")


def enable_multiprocess() -> Path:
    """Use (and empty) $PROMETHEUS_MULTIPROC_DIR, or a private temporary directory."""
    if "prometheus_client" in sys.modules and MULTIPROC_ENV not in os.environ:
        raise RuntimeError("multiprocess metrics must be enabled before prometheus_client loads")
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # values of an earlier run would be summed in
            stale.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="revocd-metrics-"))
        os.environ[MULTIPROC_ENV] = str(path)
        atexit.register(shutil.rmtree, path, True)
    return path


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def exposition() -> bytes:
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    if not multiprocess():
        return generate_latest(REGISTRY)
    from prometheus_client import multiprocess as mp

    registry = CollectorRegistry()
    mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def process_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay in the sums)."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def counter_total(name: str, labels: dict[str, str]) -> float:
    """A counter's value summed over every process (and every other label), for checks
    the main process makes of what its workers counted."""
    from prometheus_client import REGISTRY, CollectorRegistry

    registry: CollectorRegistry = REGISTRY
    if multiprocess():
        from prometheus_client import multiprocess as mp

        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
