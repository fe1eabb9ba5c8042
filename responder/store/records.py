"""Certificate records as stored: one compact string per serial in the partition hash.

    good:    g|not_after|version|updated_at|crl_shard
    revoked: r|not_after|version|updated_at|crl_shard|revoked_at|reason|invalidity_date

Times are Unix seconds; an empty not_after means the certificate was revoked
before revocd heard of its issuance (it then stays on CRLs until not_after is known);
an empty invalidity_date means none. `version` grows with every change and
guards pre-signed answers against racing a revocation.
"""

from dataclasses import dataclass
from enum import StrEnum

from ..ocsp.types import RevocationReason


class Status(StrEnum):
    GOOD = "good"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class CertRecord:
    serial: int
    status: Status
    not_after: int | None
    version: int
    updated_at: int
    crl_shard: int
    revoked_at: int | None = None
    reason: RevocationReason | None = None
    invalidity_date: int | None = None

    @classmethod
    def decode(cls, serial: int, raw: bytes | str) -> "CertRecord":
        text = raw.decode() if isinstance(raw, bytes) else raw
        parts = text.split("|")
        not_after = int(parts[1]) if parts[1] else None
        common = (not_after, int(parts[2]), int(parts[3]), int(parts[4]))
        if parts[0] == "g":
            return cls(serial, Status.GOOD, *common)
        if parts[0] == "r":
            return cls(
                serial,
                Status.REVOKED,
                *common,
                revoked_at=int(parts[5]),
                reason=RevocationReason(int(parts[6])),
                invalidity_date=int(parts[7]) if parts[7] else None,
            )
        raise ValueError(f"unknown record kind {parts[0]!r}")

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "serial": format(self.serial, "x"),
            "status": self.status.value,
            "not_after": self.not_after,
            "version": self.version,
            "updated_at": self.updated_at,
            "crl_shard": self.crl_shard,
        }
        if self.status is Status.REVOKED:
            out["revoked_at"] = self.revoked_at
            out["reason"] = self.reason.rfc_name if self.reason is not None else None
            out["invalidity_date"] = self.invalidity_date
        return out
