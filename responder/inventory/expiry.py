"""Expiry figures of the inventory: what ends when, per issuer and owner, and whether one
day holds too much of an issuer (mass expiry: a renewal pipeline that will have to renew
a large share of a CA's certificates in one day, the pattern behind many outages).

Pure: records, facts and the time in; counts out. inventory/watch.py feeds it a scan of
the store and turns the result into metrics, a stored summary and audit anomalies.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..domain.facts import CertFacts
from ..domain.records import CertRecord
from .query import DAY, state

UNASSIGNED = "unassigned"
OTHER = "other"


@dataclass(frozen=True, slots=True)
class MassExpiry:
    issuer: str
    day: int  # Unix seconds of the UTC day's start
    count: int
    valid: int
    share: float

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "day": self.day,
            "count": self.count,
            "valid": self.valid,
            "share": round(self.share, 4),
        }


@dataclass
class ExpiryCounter:
    now: int
    days: Sequence[int]  # thresholds, e.g. 90, 60, 30, 7
    states: dict[str, Counter[str]] = field(default_factory=dict)
    # (issuer, owner) -> threshold -> count
    expiring: dict[tuple[str, str], Counter[int]] = field(default_factory=dict)
    per_day: dict[str, Counter[int]] = field(default_factory=dict)

    def add(self, issuer: str, record: CertRecord, facts: CertFacts | None) -> None:
        kind = state(record, self.now)
        self.states.setdefault(issuer, Counter())[kind] += 1
        if kind != "valid" or record.not_after is None:
            return
        left = record.not_after - self.now
        owner = (facts.owner if facts is not None else None) or UNASSIGNED
        counts = self.expiring.setdefault((issuer, owner), Counter())
        for days in self.days:
            if left < days * DAY:
                counts[days] += 1
        self.per_day.setdefault(issuer, Counter())[record.not_after // DAY * DAY] += 1

    def busiest_days(self) -> dict[str, tuple[int, int, float]]:
        """Per issuer: (day, certificates ending that day, share of its valid ones)."""
        out = {}
        for issuer, days in self.per_day.items():
            valid = self.states[issuer]["valid"]
            day, count = max(days.items(), key=lambda kv: (kv[1], -kv[0]))
            out[issuer] = (day, count, count / valid if valid else 0.0)
        return out

    def mass_expiries(self, share: float, minimum: int) -> list[MassExpiry]:
        found = []
        for issuer, (day, count, day_share) in sorted(self.busiest_days().items()):
            if day_share > share and count >= minimum:
                valid = self.states[issuer]["valid"]
                found.append(MassExpiry(issuer, day, count, valid, day_share))
        return found

    def by_owner_label(self, labels: int) -> dict[tuple[str, str], Counter[int]]:
        """The expiring counts with owners cut to the `labels` busiest (by their count at
        the widest threshold), the rest summed as 'other': owner names come from events,
        and a metric label per owner must stay bounded."""
        widest = max(self.days) if self.days else 0
        totals: Counter[str] = Counter()
        for (_, owner), counts in self.expiring.items():
            totals[owner] += counts[widest]
        keep = {o for o, _ in totals.most_common(labels)} | {UNASSIGNED}
        out: dict[tuple[str, str], Counter[int]] = {}
        for (issuer, owner), counts in self.expiring.items():
            name = owner if owner in keep else OTHER
            out.setdefault((issuer, name), Counter()).update(counts)
        return out

    def to_json(self, share: float, minimum: int) -> dict[str, Any]:
        return {
            "computed_at": self.now,
            "thresholds_days": list(self.days),
            "issuers": {
                issuer: {
                    "states": dict(counts),
                    "expiring": {
                        str(d): sum(c[d] for (i, _), c in self.expiring.items() if i == issuer)
                        for d in self.days
                    },
                    "owners": {
                        owner: {str(d): c[d] for d in self.days}
                        for (i, owner), c in sorted(self.expiring.items())
                        if i == issuer
                    },
                }
                for issuer, counts in sorted(self.states.items())
            },
            "mass_expiry": [m.to_json() for m in self.mass_expiries(share, minimum)],
        }
