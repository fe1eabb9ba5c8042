"""The inventory watcher: scans every issuer's records and facts on an interval and turns
them into the expiry metrics, a stored summary (`GET /v1/inventory/expiry`) and the
mass-expiry anomaly. Every minute it also exports each revocation campaign's progress
(one HGETALL a campaign), so a campaign whose `revocd campaign run` died part way is
an alert (RevocdCampaignStalled) rather than something found at the next incident call.

One process scans at a time (the `inventory` lease), so the metrics come from one
place and the store is read once per interval whatever the number of revocd processes.
A scan reads in HSCAN pages of 1,000, so it never stalls the store or this process's
loop for long; it takes 2-4 s per 100,000 certificates (docs/benchmarks.md,
"Inventory scan and queries"), so the interval should grow with a store of millions.
"""

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

import trio

from ..audit.trail import AuditTrail
from ..config.model import InventoryConfig
from ..observability import metrics
from ..store import Store, StoreError
from ..store.leases import Leases
from .campaign import all_campaigns
from .expiry import ExpiryCounter

log = logging.getLogger("revocd.inventory")

SUMMARY_KEY = "rv:inventory:expiry"
LEASE = "inventory"
PAGE = 1000
# Between campaign progress exports: short next to RevocdCampaignStalled's 15 minutes,
# whatever the scan interval, so a stall is seen from fresh figures.
CAMPAIGN_INTERVAL = 60.0


async def scan(
    store: Store, issuers: Sequence[str], days: Sequence[int], now: int
) -> ExpiryCounter:
    """Every record of `issuers`, with its facts, counted for the expiry figures."""
    counter = ExpiryCounter(now, tuple(days))
    for issuer in issuers:
        for partition in range(store.partitions(issuer)):
            cursor = 0
            while True:
                cursor, items = await store.inventory_page(issuer, partition, cursor, PAGE)
                for record, facts in items:
                    counter.add(issuer, record, facts)
                if cursor == 0:
                    break
    return counter


class InventoryWatcher:
    """Owned by `revocd serve`'s main process; runs in its nursery."""

    def __init__(
        self,
        store: Store,
        issuers: Sequence[str],
        settings: InventoryConfig,
        audit: AuditTrail,
        leases: Leases,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.issuers = list(issuers)
        self.settings = settings
        self.audit = audit
        self.leases = leases
        self.clock = clock
        self._labels: set[tuple[str, str, str]] = set()

    async def run(self) -> None:
        next_scan = trio.current_time()
        tick = min(CAMPAIGN_INTERVAL, self.interval)
        while True:
            if await self.leases.hold(LEASE):
                try:
                    await self.export_campaigns()
                    if trio.current_time() >= next_scan:
                        next_scan = trio.current_time() + self.interval
                        await self.once()
                except StoreError as exc:
                    # the scan is retried at the next tick, not a whole interval later
                    next_scan = trio.current_time()
                    log.warning(
                        "inventory watcher: store failed: %s; next try in %.0f s", exc, tick
                    )
            await trio.sleep(tick)

    @property
    def interval(self) -> int:
        return self.settings.scan_interval_seconds

    async def once(self) -> ExpiryCounter:
        started = time.monotonic()
        now = int(self.clock())
        counter = await scan(self.store, self.issuers, self.settings.expiry_days, now)
        share, minimum = self.settings.mass_expiry_share, self.settings.mass_expiry_min
        self._export(counter)
        summary = counter.to_json(share, minimum)
        await self.store.set_string(SUMMARY_KEY, json.dumps(summary, separators=(",", ":")))
        for found in counter.mass_expiries(share, minimum):
            await self.audit.anomaly_once(
                "mass_expiry",
                f"{found.issuer}:{found.day}",
                86400,
                **found.to_json(),
                threshold_share=share,
            )
        log.info(
            "inventory scanned in %.2f s: %s",
            time.monotonic() - started,
            {i: dict(c) for i, c in counter.states.items()},
        )
        return counter

    def _export(self, counter: ExpiryCounter) -> None:
        share, minimum = self.settings.mass_expiry_share, self.settings.mass_expiry_min
        for issuer in self.issuers:
            states = counter.states.get(issuer, Counter())
            for name in ("valid", "revoked", "expired"):
                metrics.INVENTORY_CERTIFICATES.labels(issuer, name).set(states.get(name, 0))
        busiest = counter.busiest_days()
        flagged = {m.issuer for m in counter.mass_expiries(share, minimum)}
        for issuer in self.issuers:
            metrics.INVENTORY_BUSIEST_DAY_SHARE.labels(issuer).set(
                busiest[issuer][2] if issuer in busiest else 0
            )
            metrics.INVENTORY_MASS_EXPIRY.labels(issuer).set(1 if issuer in flagged else 0)
        seen: set[tuple[str, str, str]] = set()
        for (issuer, owner), counts in counter.by_owner_label(self.settings.owner_labels).items():
            for days in self.settings.expiry_days:
                labels = (issuer, owner, str(days))
                metrics.INVENTORY_EXPIRING.labels(*labels).set(counts[days])
                seen.add(labels)
        # an owner whose certificates are all gone leaves the metric, not a stale figure
        for labels in self._labels - seen:
            metrics.INVENTORY_EXPIRING.remove(*labels)
        self._labels = seen
        metrics.INVENTORY_SCAN.set(self.clock())

    async def export_campaigns(self) -> None:
        """Each campaign's progress as gauges; the CCADB counts are not computed here
        (they read every record of the campaign: `GET /v1/campaigns/{name}` does)."""
        for found in await all_campaigns(self.store, self.issuers):
            labels = (found.name, found.issuer)
            for state, value in (
                ("total", found.total),
                ("sent", found.position),
                ("applied", found.applied),
                ("unchanged", found.unchanged),
                ("rejected", found.rejected),
            ):
                metrics.CAMPAIGN_SERIALS.labels(*labels, state).set(value)
            metrics.CAMPAIGN_UPDATED.labels(*labels).set(found.updated_at or found.created_at)
            metrics.CAMPAIGN_FINISHED.labels(*labels).set(1 if found.finished_at else 0)


async def stored_summary(store: Store) -> dict[str, object] | None:
    raw = (await store.get_strings([SUMMARY_KEY]))[SUMMARY_KEY]
    return None if raw is None else dict(json.loads(raw))
