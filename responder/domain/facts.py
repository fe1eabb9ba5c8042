"""The inventory facts of one certificate, as revocd keeps them beside its record
(responder/inventory/facts.py derives and validates them; the status rules never read
them). Stored as compact JSON, one string per serial."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CertFacts:
    """Inventory facts of one certificate. Every field is optional: a CA may give only
    an owner label, or the full certificate."""

    not_before: int | None = None
    subject: str | None = None
    sans: tuple[str, ...] = ()
    key_id: str | None = None  # subject key identifier, lowercase hex
    spki_sha256: str | None = None  # SHA-256 of the DER SubjectPublicKeyInfo, hex
    owner: str | None = None
    profile: str | None = None
    fingerprint: str | None = None  # SHA-256 of the certificate DER, when it was given

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("not_before", "subject", "key_id", "spki_sha256", "owner", "profile"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.sans:
            out["sans"] = list(self.sans)
        if self.fingerprint is not None:
            out["sha256"] = self.fingerprint
        return out

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def loads(cls, text: str | bytes) -> "CertFacts":
        return cls.from_json(json.loads(text))

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "CertFacts":
        return cls(
            not_before=raw.get("not_before"),
            subject=raw.get("subject"),
            sans=tuple(raw.get("sans", ())),
            key_id=raw.get("key_id"),
            spki_sha256=raw.get("spki_sha256"),
            owner=raw.get("owner"),
            profile=raw.get("profile"),
            fingerprint=raw.get("sha256"),
        )

    def merged(self, newer: "CertFacts") -> "CertFacts":
        """These facts with what `newer` states: a later event relabelling the owner
        keeps the certificate's derived fields."""
        return CertFacts.from_json({**self.to_json(), **newer.to_json()})
