"""The key-compromise cascade: when a key is compromised, every unexpired certificate
that has it is revoked for keyCompromise, across every issuer the caller may touch.

The plan (what would change) is computed first and is all a dry run returns, which is
the default everywhere (`revocd revoke-by-key`, `POST /v1/revoke-by-key`). Applying it:

1. the key joins the blocked list first, so an issuance racing the cascade is reported
   as an anomaly rather than missed;
2. each good certificate is revoked with reason keyCompromise; a certificate already
   revoked for another reason is moved to keyCompromise, keeping the earlier date
   (RFC 5280 5.3.1; the apply script keeps the earlier revocationDate);
3. through the Ingestor, as any event: validated, durable before it is acknowledged,
   on the change feed (pre-signer, data planes, CDN purges, the propagation ledger).

Run twice, it changes nothing the second time: certificates already revoked for
keyCompromise are listed as `already`, expired ones as `expired` (untouched: BR 4.9.1.1
does not ask to revoke what has expired, and CRLs stop listing them at retention).
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..domain.records import CertRecord, Status
from ..ingest import Ingestor
from ..ocsp.types import RevocationReason
from ..store import Store

REVOKE = "revoke"  # good now: revoked for keyCompromise
TO_KEY_COMPROMISE = "to_key_compromise"  # revoked for another reason: reason changed
ALREADY = "already"  # revoked for keyCompromise already
EXPIRED = "expired"  # past notAfter: left alone


@dataclass(frozen=True, slots=True)
class Step:
    issuer: str
    serial: int
    action: str
    status: str  # before: good, or revoked:<reason>

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "serial": format(self.serial, "x"),
            "action": self.action,
            "before": self.status,
        }


def step_for(issuer: str, record: CertRecord, now: int) -> Step:
    if record.status is Status.GOOD:
        before = "good"
    else:
        before = f"revoked:{record.reason.rfc_name if record.reason else 'unspecified'}"
    if record.not_after is not None and record.not_after < now:
        action = EXPIRED
    elif record.status is Status.GOOD:
        action = REVOKE
    elif record.reason is RevocationReason.KEY_COMPROMISE:
        action = ALREADY
    else:
        action = TO_KEY_COMPROMISE
    return Step(issuer, record.serial, action, before)


async def plan(store: Store, issuers: Sequence[str], spki_sha256: str, now: int) -> list[Step]:
    """What the cascade would do: every certificate recorded with the key, by issuer.
    The key index is confirmed against each certificate's facts (an index entry left
    by facts given again with another key is not a match)."""
    steps: list[Step] = []
    for issuer in issuers:
        serials = await store.serials_with_key(issuer, spki_sha256)
        if not serials:
            continue
        facts = await store.inventory_facts(issuer, serials)
        records = await store.get_records(issuer, serials)
        for serial in serials:
            record = records.get(serial)
            found = facts.get(serial)
            if record is None or found is None or found.spki_sha256 != spki_sha256:
                continue
            steps.append(step_for(issuer, record, now))
    return steps


def counts(steps: Sequence[Step]) -> dict[str, int]:
    out = {REVOKE: 0, TO_KEY_COMPROMISE: 0, ALREADY: 0, EXPIRED: 0}
    for step in steps:
        out[step.action] += 1
    return out


async def apply(
    store: Store,
    ingest: Ingestor,
    steps: Sequence[Step],
    spki_sha256: str,
    now: int,
    by: str,
    allowed: set[str] | None = None,
) -> tuple[bool, list[dict[str, Any]]]:
    """Block the key, then revoke what the plan says. Returns whether the key was newly
    blocked, and the result of each revocation sent (as the events endpoint reports)."""
    blocked = await store.block_key(
        spki_sha256, {"at": now, "by": by, "reason": "keyCompromise cascade"}
    )
    revoked_at = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = [
        {
            "type": "revoked",
            "issuer": s.issuer,
            "serial": format(s.serial, "x"),
            "revoked_at": revoked_at,
            "reason": "keyCompromise",
        }
        for s in steps
        if s.action in (REVOKE, TO_KEY_COMPROMISE)
    ]
    results: list[dict[str, Any]] = []
    for start in range(0, len(events), 10_000):
        chunk = events[start : start + 10_000]
        for event, result in zip(chunk, await ingest.submit(chunk, allowed), strict=True):
            results.append({"issuer": event["issuer"], **result.to_json()})
    return blocked, results
