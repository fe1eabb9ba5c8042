"""The inventory on a real store (one server and a 3-master cluster): facts kept and
merged by the Lua, the key index, paging by HSCAN cursor; the watcher's scan turned
into metrics, a stored summary and a mass-expiry anomaly in the audit log."""

import json
import os
import time
from pathlib import Path

from prometheus_client import REGISTRY

from responder.audit.log import AuditLog
from responder.audit.trail import AuditTrail
from responder.config import IssuerConfig
from responder.config.model import InventoryConfig
from responder.inventory.watch import InventoryWatcher, stored_summary
from responder.policy import Policy
from responder.store import Store
from responder.store.leases import Leases

from ..store_helpers import with_store

DAY = 86400


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def test_facts_key_index_and_pages(store_url):
    name = f"inv{os.getpid()}{abs(hash(store_url)) % 1000}"
    issuers = {name: IssuerConfig(name, Path("x.pem"), Policy.PRIVATE, partitions=8)}
    key = "cd" * 32

    async def run(store: Store, ingest):
        events = [
            {
                "type": "issued",
                "issuer": name,
                "serial": format(0x100 + i, "x"),
                "not_after": "2031-01-01T00:00:00Z",
                "owner": "team-a",
                **({"spki_sha256": key} if i % 10 == 0 else {}),
            }
            for i in range(500)
        ]
        assert {r.result.value for r in await ingest.submit(events)} == {"applied"}
        # relabel one: the key stays, the owner changes (merged by the script)
        relabel = {**events[0], "owner": "team-b"}
        relabel.pop("spki_sha256")
        assert (await ingest.submit([relabel]))[0].result.value == "unchanged"
        facts = await store.inventory_facts(name, [0x100])
        assert facts[0x100].owner == "team-b" and facts[0x100].spki_sha256 == key
        assert await store.serials_with_key(name, key) == [0x100 + i for i in range(0, 500, 10)]
        seen = []
        for p in range(8):
            cursor = 0
            while True:
                cursor, page = await store.inventory_page(name, p, cursor, 37)
                seen += [r.serial for r, f in page if f is not None]
                if cursor == 0:
                    break
        assert sorted(seen) == [0x100 + i for i in range(500)]
        assert await store.block_key(key, {"at": 1}) is True
        assert await store.block_key(key, {"at": 2}) is False
        assert (await store.blocked_keys([key, "ef" * 32]))[key] == {"at": 1}

    with_store(store_url, run, issuers)


def sample(name: str, labels: dict[str, str]) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_watcher_metrics_summary_and_mass_expiry(valkey_standalone, tmp_path):
    name = f"watch{os.getpid()}"
    issuers = {name: IssuerConfig(name, Path("x.pem"), Policy.PRIVATE, partitions=4)}
    now = time.time()
    crowded_day = (int(now) // DAY + 20) * DAY + 3600

    async def run(store: Store, ingest):
        events = []
        for i in range(400):  # 300 on one day, 100 spread; 10 expired, 10 revoked
            not_after = crowded_day + i if i < 300 else now + (i - 299) * 3 * DAY
            events.append(
                {
                    "type": "issued",
                    "issuer": name,
                    "serial": format(0x1000 + i, "x"),
                    "not_after": iso(not_after),
                    "owner": "web" if i % 2 else "db",
                }
            )
        events += [
            {
                "type": "issued",
                "issuer": name,
                "serial": format(0x9000 + i, "x"),
                "not_after": iso(now - DAY),
            }
            for i in range(10)
        ]
        events += [
            {
                "type": "revoked",
                "issuer": name,
                "serial": format(0x1000 + i, "x"),
                "revoked_at": iso(now - 60),
                "reason": "superseded",
            }
            for i in range(300, 310)
        ]
        assert {r.result.value for r in await ingest.submit(events)} == {"applied"}
        trail = AuditTrail(AuditLog(tmp_path / "audit.log"))
        settings = InventoryConfig(mass_expiry_share=0.5, mass_expiry_min=100)
        watcher = InventoryWatcher(store, [name], settings, trail, Leases(store))
        counter = await watcher.once()
        assert dict(counter.states[name]) == {"valid": 390, "revoked": 10, "expired": 10}
        summary = await stored_summary(store)
        assert summary is not None
        assert summary["issuers"][name]["states"]["valid"] == 390
        return summary

    summary = with_store(valkey_standalone.url, run, issuers)
    assert [m["issuer"] for m in summary["mass_expiry"]] == [name]
    assert sample("revocd_inventory_certificates", {"issuer": name, "state": "expired"}) == 10
    assert sample("revocd_inventory_mass_expiry", {"issuer": name}) == 1
    share = sample("revocd_inventory_busiest_expiry_day_share", {"issuer": name})
    assert share is not None and 0.76 < share < 0.78  # 300 of 390
    # within 30 days: the crowded day (300, half each owner) and ~8 spread ones, all valid
    web, db = (
        sample("revocd_inventory_expiring", {"issuer": name, "owner": o, "within_days": "30"})
        for o in ("web", "db")
    )
    assert web is not None and db is not None and 300 <= web + db <= 310
    records = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    found = [r for r in records if r["kind"] == "anomaly.mass_expiry"]
    assert found and found[0]["issuer"] == name and found[0]["count"] >= 300
