"""Turn an OCSP GET request target into request DER (RFC 6960 appendix A.1, RFC 9919 section 5).

Real clients and the proxies between them mangle the base64 in several ways;
each quirk tolerated here was seen in the field:
- `+` turned into a space by a form-decoding proxy, or escaped as `%2B`;
- `/` and `=` escaped as `%2F` and `%3D`;
- padding missing or cut short;
- the base64url alphabet (`-`, `_`) instead of the standard one;
- the responder URL ending in `/` so the path holds `//` before the payload
  (`//` inside the payload is part of the base64 and is kept).
"""

import binascii
from urllib.parse import unquote

from .errors import MalformedRequest

# A GET URL longer than this is not an OCSP request a client would send
# (100 CertIDs with SHA-512 hashes and a 128-octet nonce fit in ~25 kB of base64).
MAX_GET_PATH = 32 * 1024

_TRANSLATE = str.maketrans({" ": "+", "-": "+", "_": "/"})


def request_der_from_path(target: str, prefix: str = "/") -> bytes:
    """Return the DER OCSPRequest carried in a GET request target.

    `prefix` is the path the responder is mounted at (e.g. "/ocsp/"); a target
    outside it is malformed. A query string or fragment is not part of the payload.
    """
    if len(target) > MAX_GET_PATH:
        raise MalformedRequest("GET path is too long")
    path = target.split("?", 1)[0].split("#", 1)[0]
    norm_prefix = "/" + prefix.strip("/")
    if norm_prefix != "/":
        stripped = path.lstrip("/")
        head = norm_prefix[1:]
        if not (stripped == head or stripped.startswith(head + "/")):
            raise MalformedRequest("GET path is outside the OCSP prefix")
        path = stripped[len(head) :]
    # A DER OCSPRequest starts with 0x30, base64 'M': leading slashes are never payload.
    try:
        payload = unquote(path.lstrip("/"), errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedRequest("GET path is not valid base64") from exc
    payload = payload.translate(_TRANSLATE).rstrip("=")
    if not payload:
        raise MalformedRequest("GET path holds no request")
    if len(payload) % 4 == 1:
        raise MalformedRequest("GET path is not valid base64")
    payload += "=" * (-len(payload) % 4)
    try:
        return binascii.a2b_base64(payload.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise MalformedRequest("GET path is not valid base64") from exc
