"""Decode OCSP requests from POST bodies and GET paths."""

from .fast import request_codec
from .getpath import request_der_from_path
from .types import OCSPRequest

MAX_CERT_IDS: int = 100


def decode_request(der: bytes) -> OCSPRequest:
    """Decode a DER OCSPRequest (POST body). Raises MalformedRequest."""
    result: OCSPRequest = request_codec.decode_request(der)
    return result


def decode_get(target: str, prefix: str = "/") -> OCSPRequest:
    """Decode the OCSPRequest carried in a GET request target. Raises MalformedRequest."""
    return decode_request(request_der_from_path(target, prefix))
