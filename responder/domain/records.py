"""A certificate's status as revocd keeps it, one record per issuer and serial.

`version` grows with every change: an answer signed from one version is stored only
while the record still has it, so a signer racing a revocation cannot bring back
`good` (store/lua/put_answers.lua).
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
    # None: revoked before revocd heard of the issuance (a CRL import, for example);
    # such an entry stays on CRLs until an `issued` event supplies it.
    not_after: int | None
    version: int
    updated_at: int
    # serial mod the issuer's crl_shards at first sight; never changes afterwards.
    crl_shard: int
    revoked_at: int | None = None
    reason: RevocationReason | None = None
    invalidity_date: int | None = None

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
