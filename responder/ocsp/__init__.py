"""OCSP protocol core (RFC 6960, RFC 9919, RFC 9654), sans-IO.

Bytes in, objects out: no sockets, no event loop, no store. The data plane
feeds request bytes in and gets request objects; the answer sources produce
SingleAnswers; a signer signs `response_data(...)`; `successful_response`
wraps the result.
"""

from .certid import IssuerHashes, encode_cert_id, encode_integer
from .errors import MalformedRequest
from .fast import REQUEST_COMPILED, RESPONSE_COMPILED
from .request import MAX_CERT_IDS, decode_get, decode_request
from .response import (
    ERROR_RESPONSES,
    SingleAnswer,
    error_response,
    response_data,
    successful_response,
)
from .types import (
    CertID,
    CertStatus,
    HashAlgorithm,
    OCSPRequest,
    ResponseStatus,
    RevocationReason,
)

__all__ = [
    "ERROR_RESPONSES",
    "MAX_CERT_IDS",
    "REQUEST_COMPILED",
    "RESPONSE_COMPILED",
    "CertID",
    "CertStatus",
    "HashAlgorithm",
    "IssuerHashes",
    "MalformedRequest",
    "OCSPRequest",
    "ResponseStatus",
    "RevocationReason",
    "SingleAnswer",
    "decode_get",
    "decode_request",
    "encode_cert_id",
    "encode_integer",
    "error_response",
    "response_data",
    "successful_response",
]
