"""GET requests: URL quirks of real clients and proxies (RFC 6960 A.1, RFC 9919 section 5)."""

import base64
from urllib.parse import quote

import pytest

from responder.ocsp import decode_get, decode_request

from .. import reqbuild as rb

# A request whose base64 contains '+', '/' and '=' (found by search over nonces).
REQUEST = next(
    r
    for r in (
        rb.request(extensions=[rb.nonce_ext(bytes([i]) * 7 + b"\xfb\xff")]) for i in range(256)
    )
    if {"+", "/", "="} <= set(base64.b64encode(r).decode())
)
B64 = base64.b64encode(REQUEST).decode()


def test_fixture_has_all_special_characters():
    assert "+" in B64 and "/" in B64 and B64.endswith("=")


@pytest.mark.parametrize(
    ("target", "prefix"),
    [
        ("/" + B64, "/"),
        ("/" + quote(B64, safe=""), "/"),  # %2B %2F %3D
        ("/" + quote(B64, safe="/"), "/"),  # %2B %3D, raw slashes
        ("/" + B64.replace("+", " "), "/"),  # '+' decoded to space by a proxy
        ("/" + B64.replace("+", "%20"), "/"),
        ("/" + B64.rstrip("="), "/"),  # padding dropped
        ("/" + B64.rstrip("=") + "=", "/"),  # padding cut short
        ("/" + base64.urlsafe_b64encode(REQUEST).decode(), "/"),
        ("//" + B64, "/"),  # responder URL ending in '/'
        ("/ocsp/" + B64, "/ocsp/"),
        ("/ocsp/" + B64, "/ocsp"),
        ("/ocsp//" + B64, "/ocsp/"),
        ("//ocsp/" + B64, "/ocsp/"),
        ("/" + B64 + "?cachebuster=1", "/"),
    ],
)
def test_quirky_get_paths_decode(target, prefix):
    assert decode_get(target, prefix) == decode_request(REQUEST)


def test_double_slash_inside_payload_is_kept():
    """'//' inside the base64 is data; collapsing it would corrupt the request."""
    candidates = (
        rb.request(extensions=[rb.nonce_ext(bytes([i, j]) * 6)])
        for i in range(256)
        for j in range(0, 256, 17)
    )
    req = next(r for r in candidates if "//" in base64.b64encode(r).decode())
    assert decode_get("/" + base64.b64encode(req).decode()) == decode_request(req)


def test_prefix_must_match_whole_segment():
    from responder.ocsp import MalformedRequest

    with pytest.raises(MalformedRequest):
        decode_get("/ocspx/" + B64, "/ocsp/")
