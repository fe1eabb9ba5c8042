"""Revocation campaigns: revoke a list of certificates (a serials file, or what an
inventory query matched when the campaign was made) at a chosen rate, resumably.

A campaign is kept in the store: its definition (issuer, reason, one revocationDate for
all its certificates, where its serials came from), the serials in order, and how far
it has got. Running it again after a crash goes on from the stored position; the batch
in flight when the crash came is sent again, and because every event of a campaign
carries the same revocationDate and reason, what had landed is `unchanged`: nothing is
applied twice, whatever the moment of the crash.

The CCADB incident counts (revoked, not yet revoked, expired, unknown) come from the
records themselves, not from the campaign's own tally, so they are right at any moment,
whoever revoked what.
"""

import datetime as dt
import hashlib
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from ..domain.records import CertRecord, Status
from ..ingest import MAX_BATCH, Ingestor
from ..store import Store

CHUNK = 10_000  # serials per list read and per RPUSH
# A campaign's name is part of store keys, metric labels and the control plane's
# /v1/campaigns/{name} path, so it is kept to characters that are safe in all three.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class CampaignError(ValueError):
    pass


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise CampaignError(
            f"name {name[:80]!r}: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class Campaign:
    name: str
    issuer: str
    reason: str
    revoked_at: int
    total: int
    source: str  # "file sha256:<hex>" or "query <params>"
    position: int = 0  # serials sent and acknowledged so far
    created_at: int = 0
    finished_at: int = 0
    # when the position last moved (or the campaign was made): an unfinished campaign
    # whose updated_at stops moving has lost its `revocd campaign run` process, and
    # RevocdCampaignStalled says so (inventory/watch.py exports it)
    updated_at: int = 0
    applied: int = 0
    unchanged: int = 0
    rejected: int = 0
    failed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_hash(cls, name: str, raw: dict[str, str]) -> "Campaign":
        ints = (
            "revoked_at",
            "total",
            "position",
            "created_at",
            "finished_at",
            "updated_at",
            "applied",
            "unchanged",
            "rejected",
            "failed",
        )
        return cls(
            name=name,
            issuer=raw["issuer"],
            reason=raw["reason"],
            source=raw["source"],
            **{k: int(raw.get(k, "0")) for k in ints},
        )


def parse_serials(text: str) -> list[int]:
    """A serials file: one hex serial per line; blank lines and # comments skipped."""
    from ..ingest import EventError, parse_serial

    out: list[int] = []
    seen: set[int] = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            serial = parse_serial(line)
        except EventError as exc:
            raise CampaignError(f"line {number}: {exc}") from None
        if serial not in seen:
            seen.add(serial)
            out.append(serial)
    return out


def source_of_file(text: str) -> str:
    return "file sha256:" + hashlib.sha256(text.encode()).hexdigest()


async def load(store: Store, name: str) -> Campaign | None:
    raw = await store.campaign_get(name)
    return Campaign.from_hash(name, raw) if raw else None


async def create(store: Store, campaign: Campaign, serials: Sequence[int]) -> None:
    fields = {k: str(v) for k, v in campaign.to_json().items() if k != "name"}
    await store.campaign_create(campaign.name, fields, [format(s, "x") for s in serials], CHUNK)


async def serials_of(store: Store, name: str, start: int = 0) -> AsyncIterator[list[int]]:
    while True:
        found = await store.campaign_serials(name, start, CHUNK)
        if not found:
            return
        yield [int(s, 16) for s in found]
        start += len(found)


async def counts(store: Store, campaign: Campaign, now: int) -> dict[str, int]:
    """CCADB incident counts from the records: revoked, not yet revoked, expired (and
    not revoked), unknown (no record)."""
    out = _zero(campaign.total)
    async for chunk in serials_of(store, campaign.name):
        _count(out, chunk, await store.get_records(campaign.issuer, chunk), now)
    return out


async def counts_of(store: Store, issuer: str, serials: Sequence[int], now: int) -> dict[str, int]:
    """The same counts for serials not stored as a campaign (a dry run)."""
    out = _zero(len(serials))
    for start in range(0, len(serials), CHUNK):
        chunk = list(serials[start : start + CHUNK])
        _count(out, chunk, await store.get_records(issuer, chunk), now)
    return out


def _zero(total: int) -> dict[str, int]:
    return {"total": total, "revoked": 0, "not_revoked": 0, "expired": 0, "unknown": 0}


def _count(
    out: dict[str, int], chunk: Sequence[int], records: Mapping[int, CertRecord], now: int
) -> None:
    for serial in chunk:
        record = records.get(serial)
        if record is None:
            out["unknown"] += 1
        elif record.status is Status.REVOKED:
            out["revoked"] += 1
        elif record.not_after is not None and record.not_after < now:
            out["expired"] += 1
        else:
            out["not_revoked"] += 1


def event_for(campaign: Campaign, serial: int) -> dict[str, str]:
    return {
        "type": "revoked",
        "issuer": campaign.issuer,
        "serial": format(serial, "x"),
        "revoked_at": dt.datetime.fromtimestamp(campaign.revoked_at, dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "reason": campaign.reason,
    }


async def run(
    store: Store,
    ingest: Ingestor,
    campaign: Campaign,
    rate: float,
    progress: Callable[[Campaign], None],
    clock: Callable[[], float] = time.time,
) -> Campaign:
    """Send the campaign's revocations from its stored position, at most `rate` a
    second, moving the position after each acknowledged batch."""
    batch = max(1, min(MAX_BATCH, int(rate) if rate >= 1 else 1, 2000))
    position = campaign.position
    tallies = {k: getattr(campaign, k) for k in ("applied", "unchanged", "rejected", "failed")}
    started, sent = trio.current_time(), 0
    async for chunk in serials_of(store, campaign.name, position):
        for i in range(0, len(chunk), batch):
            part = chunk[i : i + batch]
            results = await ingest.submit([event_for(campaign, s) for s in part])
            if any(r.result == "failed" for r in results):
                raise CampaignError(
                    f"the store did not acknowledge a batch at position {position}; "
                    "run the campaign again to go on from there"
                )
            for result in results:
                tallies[str(result.result)] += 1
            position += len(part)
            updated = int(clock())
            await store.campaign_set(
                campaign.name,
                {
                    "position": str(position),
                    "updated_at": str(updated),
                    **{k: str(v) for k, v in tallies.items()},
                },
            )
            campaign = Campaign(
                **{**campaign.to_json(), "position": position, "updated_at": updated, **tallies}
            )
            progress(campaign)
            sent += len(part)
            # the rate over the whole run, not per batch: a slow batch is made up later
            ahead = sent / rate - (trio.current_time() - started) if rate > 0 else 0
            if ahead > 0:
                await trio.sleep(ahead)
    finished = int(clock())
    await store.campaign_set(
        campaign.name, {"finished_at": str(finished), "updated_at": str(finished)}
    )
    return Campaign(**{**campaign.to_json(), "finished_at": finished, "updated_at": finished})


async def all_campaigns(store: Store, issuers: Sequence[str] | None = None) -> list[Campaign]:
    """Every stored campaign (of `issuers`, when given), by name."""
    out = []
    for name in await store.campaign_names():
        found = await load(store, name)
        if found is not None and (issuers is None or found.issuer in issuers):
            out.append(found)
    return out
