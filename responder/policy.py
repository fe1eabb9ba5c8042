"""Certificate policies and what each allows (CA/B Forum BRs, RFC 5280)."""

from enum import StrEnum

from .ocsp.types import RevocationReason


class Policy(StrEnum):
    TLS = "tls"
    SMIME = "smime"
    CODE_SIGNING = "code_signing"
    PRIVATE = "private"


# TLS BR 7.2.2 / 4.9.1.1: the reasons a subscriber certificate may be revoked with
# (unspecified is carried by omitting the reason code).
_BR_REASONS = frozenset(
    {
        RevocationReason.UNSPECIFIED,
        RevocationReason.KEY_COMPROMISE,
        RevocationReason.AFFILIATION_CHANGED,
        RevocationReason.SUPERSEDED,
        RevocationReason.CESSATION_OF_OPERATION,
        RevocationReason.PRIVILEGE_WITHDRAWN,
    }
)

ALLOWED_REASONS: dict[Policy, frozenset[RevocationReason]] = {
    Policy.TLS: _BR_REASONS,
    Policy.CODE_SIGNING: _BR_REASONS,
    # S/MIME BR allow certificateHold; revocd lets a hold be lifted with `unrevoked`.
    Policy.SMIME: _BR_REASONS | {RevocationReason.CERTIFICATE_HOLD},
    Policy.PRIVATE: frozenset(RevocationReason) - {RevocationReason.REMOVE_FROM_CRL},
}

# How long a revoked entry stays on CRLs after the certificate expires (seconds);
# 0 means "until it has appeared on one CRL after expiry" (RFC 5280 section 3.3).
DEFAULT_CRL_RETENTION: dict[Policy, int] = {
    Policy.TLS: 0,
    Policy.SMIME: 0,
    Policy.CODE_SIGNING: 10 * 365 * 86400,
    Policy.PRIVATE: 0,
}


def allows_hold(policy: Policy) -> bool:
    return RevocationReason.CERTIFICATE_HOLD in ALLOWED_REASONS[policy]
