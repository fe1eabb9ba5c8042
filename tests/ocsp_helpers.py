"""Helpers to answer an openssl-built request with the protocol core."""

import time
from pathlib import Path

import trio

from responder.ocsp import CertStatus, RevocationReason, SingleAnswer, decode_request
from responder.signing import ResponderIdentity

HOUR = 3600


def answer_request(
    identity: ResponderIdentity,
    request_der: bytes,
    statuses: dict[int, CertStatus],
    reason: RevocationReason | None = RevocationReason.KEY_COMPROMISE,
    echo_nonce: bool = True,
) -> bytes:
    """Decode the request and sign one answer per CertID, as a live responder would."""
    request = decode_request(request_der)
    now = int(time.time())
    answers = []
    for cert_id in request.cert_ids:
        status = statuses.get(cert_id.serial, CertStatus.UNKNOWN)
        if status is CertStatus.REVOKED:
            answers.append(
                SingleAnswer(
                    cert_id.der,
                    status,
                    now - 300,
                    now + 24 * HOUR,
                    revoked_at=now - 2 * HOUR,
                    reason=reason,
                )
            )
        else:
            answers.append(SingleAnswer(cert_id.der, status, now - 300, now + 24 * HOUR))
    nonce = request.nonce if echo_nonce else None
    return trio.run(identity.sign, answers, now, nonce)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
