"""The service side of the audit log: async appends, and the anomalies worth a record.

Appends run in a worker thread (they fsync). A failed append is counted, logged, and
makes `healthy` false; the control plane then refuses events with 503 until an append
succeeds again, because an event nobody can account for must not be acknowledged.
"""

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from ..config import AuditConfig
from ..observability import metrics
from .log import AuditLog, operator_name

log = logging.getLogger("revocd.audit")

Entry = tuple[str, Mapping[str, Any]]
BURST_WINDOW = 60.0
LIMITED_PER_MINUTE = 10


@dataclass
class _Window:
    start: float
    recorded: int = 0
    suppressed: int = 0


def open_audit_log(settings: AuditConfig, path: Path) -> AuditLog | None:
    """The audit log at `path` as [audit] sets it up, or None when it is disabled."""
    if not settings.enabled:
        return None
    return AuditLog(path, max_bytes=settings.max_bytes, fsync=settings.fsync)


def record_command(audit: AuditLog | None, kind: str, **fields: Any) -> None:
    """A record made by a command-line action (imports, key changes), naming who ran it."""
    if audit is not None:
        audit.write(kind, **fields, operator=operator_name())


class AuditTrail:
    def __init__(
        self,
        log_file: AuditLog | None,
        *,
        revocation_burst_per_minute: int = 1000,
        answer_expiry_warning_seconds: int = 4 * 3600,
    ) -> None:
        self.file = log_file
        self.burst_threshold = revocation_burst_per_minute
        self.answer_expiry_warning = answer_expiry_warning_seconds
        self.healthy = True
        self._revocations: dict[str, deque[tuple[float, int]]] = {}
        self._burst_noted: dict[str, float] = {}
        self._noted_once: dict[tuple[str, str], float] = {}
        self._limited: dict[tuple[str, str], _Window] = {}
        self.clock = time.monotonic

    @classmethod
    def disabled(cls) -> "AuditTrail":
        return cls(None)

    @classmethod
    def from_settings(cls, settings: AuditConfig, path: Path) -> "AuditTrail":
        """The trail [audit] describes, writing to `path` (Config.audit_file)."""
        return cls(
            open_audit_log(settings, path),
            revocation_burst_per_minute=settings.revocation_burst_per_minute,
            answer_expiry_warning_seconds=settings.answer_expiry_warning_hours * 3600,
        )

    async def record(self, kind: str, **fields: Any) -> bool:
        return await self.record_many([(kind, fields)])

    async def record_many(self, entries: Sequence[Entry]) -> bool:
        if self.file is None or not entries:
            return True
        try:
            written = await trio.to_thread.run_sync(self.file.write_many, entries)
        except OSError as exc:
            metrics.AUDIT_WRITE_FAILURES.inc()
            if self.healthy:
                log.error("audit log %s cannot be written: %s", self.file.path, exc)
            self.healthy = False
            return False
        if not self.healthy:
            log.info("audit log %s writable again", self.file.path)
        self.healthy = True
        for record in written:
            metrics.AUDIT_RECORDS.labels(record["kind"]).inc()
        return True

    async def started(self, role: str, summary: Mapping[str, Any]) -> bool:
        """Record a start, and what changed in the configuration since the last start of
        the same role: the digest, and issuers and tokens added, removed or rescoped."""
        entries: list[Entry] = []
        if self.file is not None:
            previous = await trio.to_thread.run_sync(
                self.file.last, "service.started", {"role": role}
            )
            if previous is not None:
                change = config_change(previous, summary)
                if change:
                    entries.append(("config.changed", {"role": role, **change}))
        entries.append(("service.started", {"role": role, **summary}))
        return await self.record_many(entries)

    async def anomaly(self, kind: str, **fields: Any) -> bool:
        metrics.AUDIT_ANOMALIES.labels(kind).inc()
        log.warning("anomaly %s: %s", kind, fields)
        return await self.record(f"anomaly.{kind}", **fields)

    async def anomaly_once(self, kind: str, key: str, every: float, **fields: Any) -> None:
        """An anomaly that persists (a cert about to expire) is recorded once per `every`."""
        now = time.monotonic()
        last = self._noted_once.get((kind, key))
        if last is not None and now - last < every:
            return
        self._noted_once[(kind, key)] = now
        await self.anomaly(kind, **fields)

    async def anomaly_limited(self, kind: str, key: str, **fields: Any) -> None:
        """An anomaly anyone on the network can cause (refused tokens): at most
        LIMITED_PER_MINUTE records per key a minute, the rest counted and summed up in one
        `anomaly.<kind>_suppressed` record, so a flood cannot fill the disk and stop
        events through an unwritable log. The metric counts every one."""
        now = self.clock()
        window = self._limited.get((kind, key))
        if window is None or now - window.start >= BURST_WINDOW:
            if window is not None and window.suppressed:
                await self._suppressed(kind, key, window.suppressed)
            window = self._limited[(kind, key)] = _Window(now)
        if window.recorded < LIMITED_PER_MINUTE:
            window.recorded += 1
            await self.anomaly(kind, **fields)
        else:
            window.suppressed += 1
            metrics.AUDIT_ANOMALIES.labels(kind).inc()

    async def flush_suppressed(self) -> None:
        """Owned by the service nursery: write the suppressed counts of ended windows."""
        while True:
            await trio.sleep(BURST_WINDOW / 4)
            now = self.clock()
            for (kind, key), window in list(self._limited.items()):
                if now - window.start >= BURST_WINDOW:
                    del self._limited[(kind, key)]
                    if window.suppressed:
                        await self._suppressed(kind, key, window.suppressed)

    async def _suppressed(self, kind: str, key: str, count: int) -> None:
        await self.record(
            f"anomaly.{kind}_suppressed", key=key, suppressed=count, window_seconds=BURST_WINDOW
        )

    def revocations(self, issuer: str, count: int, now: float | None = None) -> int | None:
        """Count applied revocations; returns the last minute's total when it first passes
        the threshold (at most once a minute per issuer), else None."""
        if count <= 0:
            return None
        now = time.monotonic() if now is None else now
        window = self._revocations.setdefault(issuer, deque())
        window.append((now, count))
        while window and window[0][0] < now - BURST_WINDOW:
            window.popleft()
        total = sum(c for _, c in window)
        if total <= self.burst_threshold:
            return None
        last = self._burst_noted.get(issuer)
        if last is not None and now - last < BURST_WINDOW:
            return None
        self._burst_noted[issuer] = now
        return total


def config_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """What differs between two configuration summaries (empty when nothing does)."""
    if before.get("config_sha256") == after.get("config_sha256"):
        return {}
    old_issuers, new_issuers = set(before.get("issuers", [])), set(after.get("issuers", []))
    old_tokens, new_tokens = dict(before.get("tokens", {})), dict(after.get("tokens", {}))
    return {
        "previous_sha256": before.get("config_sha256"),
        "config_sha256": after.get("config_sha256"),
        "issuers_added": sorted(new_issuers - old_issuers),
        "issuers_removed": sorted(old_issuers - new_issuers),
        "tokens_added": sorted(set(new_tokens) - set(old_tokens)),
        "tokens_removed": sorted(set(old_tokens) - set(new_tokens)),
        "tokens_rescoped": sorted(
            t for t in set(old_tokens) & set(new_tokens) if old_tokens[t] != new_tokens[t]
        ),
    }


async def watch_never_issued(
    trail: AuditTrail, per_minute: int, read: "Callable[[], float] | None" = None
) -> None:
    """Owned by `revocd serve`'s main process: once a minute, how many OCSP questions
    were answered `unknown` (serials never issued) across the workers; above
    `per_minute`, an `anomaly.never_issued_queries` record (at most once in 5 minutes).
    A single request never writes a record: anyone can ask about any serial."""
    from ..observability.export import counter_total

    def unknown_answers() -> float:
        return counter_total("revocd_ocsp_requests_total", {"result": "unknown"})

    read = read or unknown_answers
    last = read()
    while True:
        await trio.sleep(BURST_WINDOW)
        now = read()
        delta, last = now - last, now
        if per_minute and delta > per_minute:
            await trail.anomaly_once(
                "never_issued_queries",
                "all",
                300,
                answered_unknown_last_minute=int(delta),
                threshold=per_minute,
            )
