"""Inventory questions: which certificates match a filter, and how to page through them.

Pure: a record, its facts and the time in, a yes or no out; the control plane's
`GET /v1/inventory` (control/inventory.py) walks the store with them. The walk is a scan
(HSCAN over each partition's records, facts read beside them) except for a key hash,
which has an index of its own (the key-compromise cascade needs it to be fast); a page
returns at most `limit` matches and a cursor, so a query never holds the store long.
"""

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ..domain.facts import CertFacts
from ..domain.records import CertRecord, Status
from .facts import FactsError, key_hash, label

MAX_LIMIT = 1000
DAY = 86400
_CURSOR = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


class QueryError(ValueError):
    """A query parameter that cannot be used; str() starts with its name."""


class StatusFilter(StrEnum):
    VALID = "valid"  # good and not expired
    REVOKED = "revoked"
    EXPIRED = "expired"  # past notAfter, whatever its status
    GOOD = "good"  # good, expired or not


def state(record: CertRecord, now: int) -> str:
    """valid, revoked or expired: what an inventory shows for a certificate."""
    if record.not_after is not None and record.not_after < now:
        return "expired"
    return "revoked" if record.status is Status.REVOKED else "valid"


@dataclass(frozen=True, slots=True)
class Query:
    issuers: tuple[str, ...]
    status: StatusFilter | None = None
    owner: str | None = None
    profile: str | None = None
    spki_sha256: str | None = None
    # notAfter within [now, now + expires_within) (only certificates not yet expired)
    expires_within: int | None = None
    limit: int = 100

    def matches(self, record: CertRecord, facts: CertFacts | None, now: int) -> bool:
        if self.status is StatusFilter.GOOD and record.status is not Status.GOOD:
            return False
        if (
            self.status is not None
            and self.status is not StatusFilter.GOOD
            and state(record, now) != self.status.value
        ):
            return False
        if self.expires_within is not None and (
            record.not_after is None or not now <= record.not_after < now + self.expires_within
        ):
            return False
        for name in ("owner", "profile", "spki_sha256"):
            wanted = getattr(self, name)
            if wanted is not None and (facts is None or getattr(facts, name) != wanted):
                return False
        return True


def item_json(
    issuer: str, record: CertRecord, facts: CertFacts | None, now: int
) -> dict[str, object]:
    """One certificate as the inventory endpoint lists it."""
    out: dict[str, object] = {"issuer": issuer, **record.to_json(), "state": state(record, now)}
    if facts is not None:
        out["facts"] = facts.to_json()
    return out


def parse_query(params: Mapping[str, Sequence[str]], allowed: Sequence[str]) -> Query:
    """A Query from URL parameters; `allowed` are the issuers the caller may read (an
    `issuer` parameter narrows them; naming one outside them is an error)."""

    def one(name: str) -> str | None:
        values = params.get(name)
        if not values:
            return None
        if len(values) > 1 and name != "issuer":
            raise QueryError(f"{name}: given more than once")
        return values[0]

    for name in params:
        if name not in _PARAMS:
            raise QueryError(f"{name}: unknown parameter; one of {', '.join(sorted(_PARAMS))}")
    issuers = tuple(params.get("issuer", ())) or tuple(allowed)
    for name in issuers:
        if name not in allowed:
            raise QueryError(f"issuer: {name!r} is unknown or not readable with this token")
    status = one("status")
    try:
        status_filter = None if status is None else StatusFilter(status)
    except ValueError:
        raise QueryError(
            f"status: one of {', '.join(s.value for s in StatusFilter)}, got {status!r}"
        ) from None
    days = one("expires_within_days")
    expires_within = None
    if days is not None:
        if not days.isdigit() or not 0 < int(days) <= 3650:
            raise QueryError("expires_within_days: a whole number of days, 1 to 3650")
        expires_within = int(days) * DAY
    limit_text = one("limit") or "100"
    if not limit_text.isdigit() or not 0 < int(limit_text) <= MAX_LIMIT:
        raise QueryError(f"limit: 1 to {MAX_LIMIT}")
    try:
        owner = None if one("owner") is None else label(one("owner"), "owner")
        profile = None if one("profile") is None else label(one("profile"), "profile")
        spki = one("spki_sha256")
        spki = None if spki is None else key_hash(spki)
    except FactsError as exc:
        raise QueryError(str(exc)) from None
    return Query(
        issuers, status_filter, owner, profile, spki, expires_within, limit=int(limit_text)
    )


_PARAMS = {
    "issuer",
    "status",
    "owner",
    "profile",
    "spki_sha256",
    "expires_within_days",
    "limit",
    "cursor",
}


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a walk stands: the issuer (index into Query.issuers), the partition, and
    the HSCAN cursor within it. Opaque to clients (base64 of "i.p.c")."""

    issuer: int = 0
    partition: int = 0
    scan: int = 0

    def encode(self) -> str:
        return base64.urlsafe_b64encode(
            f"{self.issuer}.{self.partition}.{self.scan}".encode()
        ).decode()

    @classmethod
    def decode(cls, text: str | None) -> "Cursor":
        if not text:
            return cls()
        try:
            found = _CURSOR.match(base64.urlsafe_b64decode(text.encode()).decode())
        except (binascii.Error, UnicodeDecodeError, ValueError):
            found = None
        if found is None:
            raise QueryError("cursor: not a cursor this endpoint returned")
        return cls(*(int(g) for g in found.groups()))
