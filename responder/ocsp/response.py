"""Build OCSP responses: SingleResponses, the signed ResponseData, error answers.

Sans-IO: these functions return the bytes to sign and, given a signature,
the response bytes. Who signs, and how (software key, HSM batch), is the
caller's business (responder.signing).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .fast import response_codec
from .types import CertStatus, ResponseStatus, RevocationReason


@dataclass(frozen=True, slots=True)
class SingleAnswer:
    """The status of one certificate, ready to be encoded as a SingleResponse.

    Times are Unix seconds. `cert_id` is CertID DER (echoed from the request
    or built by IssuerHashes.cert_id for a pre-signed answer).
    """

    cert_id: bytes
    status: CertStatus
    this_update: int
    next_update: int | None
    revoked_at: int | None = None
    reason: RevocationReason | None = None

    def __post_init__(self) -> None:
        if self.status is CertStatus.REVOKED and self.revoked_at is None:
            raise ValueError("a revoked answer needs revoked_at")
        if self.status is not CertStatus.REVOKED and (
            self.revoked_at is not None or self.reason is not None
        ):
            raise ValueError("only a revoked answer carries revoked_at and reason")
        if self.reason is RevocationReason.REMOVE_FROM_CRL:
            raise ValueError("removeFromCRL is a CRL-only reason")
        if self.next_update is not None and self.next_update < self.this_update:
            raise ValueError("nextUpdate before thisUpdate")

    def encode(self) -> bytes:
        # RFC 5280 section 5.3.1: reasonCode unspecified SHOULD be absent (BR 7.2.2 too).
        reason = -1
        if self.reason is not None and self.reason is not RevocationReason.UNSPECIFIED:
            reason = int(self.reason)
        single: bytes = response_codec.encode_single_response(
            self.cert_id,
            int(self.status),
            self.revoked_at if self.revoked_at is not None else 0,
            reason,
            self.this_update,
            self.next_update if self.next_update is not None else -1,
        )
        return single


def response_data(
    key_hash: bytes,
    produced_at: int,
    singles: Iterable[SingleAnswer | bytes],
    nonce: bytes | None = None,
) -> bytes:
    """The ResponseData to be signed. `singles` may be pre-encoded SingleResponses."""
    encoded = [s if isinstance(s, bytes) else s.encode() for s in singles]
    tbs: bytes = response_codec.encode_response_data(key_hash, produced_at, encoded, nonce)
    return tbs


def successful_response(
    tbs: bytes, signature_algorithm: bytes, signature: bytes, certs: Sequence[bytes] = ()
) -> bytes:
    """The OCSPResponse bytes for a signed ResponseData."""
    der: bytes = response_codec.encode_ocsp_response(
        tbs, signature_algorithm, signature, list(certs)
    )
    return der


# Unsigned answers (RFC 6960 section 4.2.1): OCSPResponse with responseStatus only.
ERROR_RESPONSES: dict[ResponseStatus, bytes] = {
    status: bytes((0x30, 0x03, 0x0A, 0x01, int(status)))
    for status in ResponseStatus
    if status is not ResponseStatus.SUCCESSFUL
}


def error_response(status: ResponseStatus) -> bytes:
    """An unsigned error answer (malformedRequest, internalError, tryLater, sigRequired,
    unauthorized)."""
    return ERROR_RESPONSES[status]
