"""The control plane's inventory routes (control/app.py dispatches to them):

    GET  /v1/inventory             certificates by issuer, state, owner, profile, key
                                   hash and expiry window; paged with an opaque cursor
    GET  /v1/inventory/expiry      the last scan's expiry figures (inventory/watch.py)
    POST /v1/revoke-by-key         the key-compromise cascade; a dry run unless "apply"
    GET  /v1/blocked-keys          the keys the cascade has blocked
    GET  /v1/campaigns             every revocation campaign and its progress
    GET  /v1/campaigns/{name}      one campaign, with the CCADB counts from its records

Every route is scoped by the token: a token sees and touches only its issuers, and a
cascade through it revokes only there (the same key elsewhere is left to a token that
may touch it, and not mentioned).
"""

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs

from ..audit.trail import AuditTrail
from ..config import TokenConfig
from ..domain.facts import CertFacts
from ..domain.records import CertRecord
from ..ingest import Ingestor
from ..inventory import campaign, cascade
from ..inventory.facts import FactsError, key_hash, load_certificate, spki_sha256
from ..inventory.query import Cursor, Query, QueryError, item_json, parse_query
from ..inventory.watch import stored_summary
from ..observability import metrics
from ..store import Store

T = TypeVar("T")
Reader = Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]
# Records read per page at most, whatever matched: a narrow filter over a large store
# returns a short (even empty) page with a cursor, rather than one long request.
SCAN_BUDGET = 20_000


class InventoryError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def readable(token: TokenConfig, issuers: Sequence[str]) -> list[str]:
    return [i for i in issuers if "*" in token.issuers or i in token.issuers]


async def list_inventory(
    store: Store, query_string: bytes, token: TokenConfig, issuers: Sequence[str], now: int
) -> dict[str, Any]:
    params = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    try:
        query = parse_query(params, readable(token, issuers))
        cursor = Cursor.decode((params.get("cursor") or [""])[0])
    except QueryError as exc:
        raise InventoryError(400, str(exc)) from None
    if query.spki_sha256 is not None:
        items = await _by_key(store, query, now)
        return {"certificates": items[: query.limit], "next_cursor": None}
    found: list[dict[str, Any]] = []
    scanned = 0
    position: Cursor | None = cursor
    while position is not None and len(found) < query.limit and scanned < SCAN_BUDGET:
        if position.issuer >= len(query.issuers):
            position = None
            break
        issuer = query.issuers[position.issuer]
        if position.partition >= store.partitions(issuer):
            position = Cursor(position.issuer + 1)
            continue
        next_scan, page = await store.inventory_page(
            issuer, position.partition, position.scan, min(1000, query.limit * 4)
        )
        scanned += len(page)
        found.extend(
            item_json(issuer, record, facts, now)
            for record, facts in page
            if query.matches(record, facts, now)
        )
        position = (
            Cursor(position.issuer, position.partition + 1)
            if next_scan == 0
            else Cursor(position.issuer, position.partition, next_scan)
        )
    # HSCAN may return a few more than asked: the page holds them all, so nothing is
    # skipped between pages
    return {
        "certificates": found,
        "next_cursor": None if position is None else position.encode(),
    }


async def _by_key(store: Store, query: Query, now: int) -> list[dict[str, Any]]:
    assert query.spki_sha256 is not None
    out = []
    for issuer in query.issuers:
        serials = await store.serials_with_key(issuer, query.spki_sha256)
        facts: dict[int, CertFacts] = await store.inventory_facts(issuer, serials)
        records: dict[int, CertRecord] = await store.get_records(issuer, serials)
        for serial in serials:
            record = records.get(serial)
            if record is not None and query.matches(record, facts.get(serial), now):
                out.append(item_json(issuer, record, facts.get(serial), now))
    return out


async def expiry_summary(
    store: Store, token: TokenConfig, issuers: Sequence[str]
) -> dict[str, Any]:
    summary = await stored_summary(store)
    if summary is None:
        raise InventoryError(404, "inventory: not scanned yet (inventory.enabled, its interval)")
    allowed = set(readable(token, issuers))
    per_issuer = dict(summary.get("issuers", {}))  # type: ignore[call-overload]
    summary["issuers"] = {k: v for k, v in per_issuer.items() if k in allowed}
    summary["mass_expiry"] = [
        m
        for m in summary.get("mass_expiry", [])  # type: ignore[attr-defined]
        if m["issuer"] in allowed
    ]
    return summary


def key_of(payload: Any) -> str:
    """The SubjectPublicKeyInfo hash a cascade request names: given, or taken from a
    certificate with that key."""
    if not isinstance(payload, dict):
        raise InventoryError(400, "body: expected a JSON object")
    unknown = set(payload) - {"spki_sha256", "certificate", "apply"}
    if unknown:
        raise InventoryError(400, f"{sorted(unknown)[0]}: unknown field")
    if ("spki_sha256" in payload) == ("certificate" in payload):
        raise InventoryError(400, "spki_sha256: give the key hash or a certificate, one of them")
    try:
        if "certificate" in payload:
            return spki_sha256(load_certificate(payload["certificate"]))
        return key_hash(payload["spki_sha256"])
    except FactsError as exc:
        raise InventoryError(400, str(exc)) from None


async def revoke_by_key(
    store: Store,
    ingest: Ingestor,
    audit: AuditTrail,
    payload: Any,
    token: TokenConfig,
    issuers: Sequence[str],
    client: str,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    spki = key_of(payload)
    apply = payload.get("apply", False)
    if not isinstance(apply, bool):
        raise InventoryError(400, "apply: true or false (false: a dry run)")
    scope = readable(token, issuers)
    now = int(clock())
    steps = await cascade.plan(store, scope, spki, now)
    out: dict[str, Any] = {
        "spki_sha256": spki,
        "dry_run": not apply,
        "issuers": scope,
        "counts": cascade.counts(steps),
        "certificates": [s.to_json() for s in steps],
    }
    if not apply:
        await audit.record(
            "cascade.planned", spki_sha256=spki, token=token.name, source=client, **out["counts"]
        )
        return out
    allowed = None if "*" in token.issuers else set(token.issuers)
    newly, results = await cascade.apply(
        store, ingest, steps, spki, now, f"token {token.name}", allowed
    )
    applied: dict[str, int] = {}
    for result in results:
        if result["result"] == "applied":
            applied[result["issuer"]] = applied.get(result["issuer"], 0) + 1
    for issuer, count in applied.items():
        metrics.CASCADE_REVOCATIONS.labels(issuer).inc(count)
    out["newly_blocked"] = newly
    out["results"] = results
    await audit.record(
        "cascade.applied",
        spki_sha256=spki,
        token=token.name,
        source=client,
        newly_blocked=newly,
        applied=sum(applied.values()),
        # the first thousand by name (the record stays small); the counts say the rest
        serials=[f"{r['issuer']}:{r.get('serial', '')}" for r in results][:1000],
        sent=len(results),
        **out["counts"],
    )
    return out


async def list_campaigns(
    store: Store, token: TokenConfig, issuers: Sequence[str]
) -> dict[str, Any]:
    """Progress only (one HGETALL each): the counts read every record of a campaign,
    so they are asked for one campaign at a time."""
    found = await campaign.all_campaigns(store, readable(token, issuers))
    return {"campaigns": [c.to_json() for c in found]}


async def campaign_detail(
    store: Store, name: str, token: TokenConfig, issuers: Sequence[str], now: int
) -> dict[str, Any]:
    try:
        campaign.check_name(name)
    except campaign.CampaignError as exc:
        raise InventoryError(400, str(exc)) from None
    found = await campaign.load(store, name)
    # another issuer's campaign is as absent as one never made: a token learns nothing
    # of issuers it may not read
    if found is None or found.issuer not in readable(token, issuers):
        raise InventoryError(404, f"campaign {name!r}: not found")
    return {**found.to_json(), "counts": await campaign.counts(store, found, now)}
