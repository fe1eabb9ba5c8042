"""The data plane is where answers become HTTP (RFC 9919 section 6, RFC 9110): headers
for cacheable answers, none of the validators for nonce answers, 304s, errors, and a
fast path that sends the same bytes the full path would."""

import hashlib

import trio

from responder.answers.answer import Answer, TryLater, Unauthorized
from responder.answers.cache import AnswerCache
from responder.dataplane.app import DataPlane
from responder.http.protocol import Request, http_date, serialize

from .. import reqbuild
from .fakes import START, Clock, Scripted, answer

BODY = reqbuild.request()


def post(headers: dict[bytes, bytes] | None = None) -> Request:
    return Request(b"POST", b"/", headers or {}, BODY, True, False)


def plane(result: Answer | Exception, cache: AnswerCache | None = None) -> DataPlane:
    return DataPlane(Scripted([result]), cache=cache, clock=Clock())  # type: ignore[list-item]


def header_map(raw: bytes) -> dict[bytes, bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return dict(line.split(b": ", 1) for line in head)


def test_a_cacheable_answer_carries_the_rfc_9919_headers() -> None:
    got = answer(7)
    response = trio.run(plane(got), post())
    headers = header_map(serialize(response, True, False))
    assert headers[b"Content-Type"] == b"application/ocsp-response"
    assert headers[b"Last-Modified"] == http_date(got.this_update)
    assert headers[b"Expires"] == http_date(got.next_update)
    assert headers[b"ETag"] == b'"%s"' % hashlib.sha256(got.der).hexdigest().encode()
    max_age = got.refresh_at - int(START)
    assert (
        headers[b"Cache-Control"] == b"max-age=%d, public, no-transform, must-revalidate" % max_age
    )


def test_a_nonce_answer_gets_no_validators() -> None:
    """Good for one request only: nothing a cache could use, and no hashing for it."""
    nonce_answer = Answer(b"der", 1, 2, 2, False, "live", "good")
    headers = header_map(serialize(trio.run(plane(nonce_answer), post()), True, False))
    assert headers[b"Cache-Control"] == b"max-age=0, no-cache"
    assert not {b"ETag", b"Expires", b"Last-Modified"} & set(headers)


def test_not_modified_carries_only_what_rfc_9110_allows() -> None:
    got = answer(7)
    etag = b'"%s"' % hashlib.sha256(got.der).hexdigest().encode()
    get = Request(b"GET", b"/" + b"A" * 10, {b"if-none-match": etag}, b"", True, False)
    dp = plane(got)
    response = dp._ocsp_response(get, got, int(START))
    raw = serialize(response, True, False)
    assert raw.startswith(b"HTTP/1.1 304 ")
    assert set(header_map(raw)) == {b"Date", b"Cache-Control", b"ETag", b"Expires"}


def test_errors_are_unsigned_ocsp_errors_never_cached() -> None:
    refused = trio.run(plane(Unauthorized("not ours")), post())
    assert refused.body == bytes.fromhex("30030a0106")
    assert dict(refused.headers)[b"Cache-Control"] == b"max-age=0, no-cache"
    assert b"Retry-After" not in dict(refused.headers)
    later = trio.run(plane(TryLater("overload")), post())
    assert later.body == bytes.fromhex("30030a0103") and dict(later.headers)[b"Retry-After"] == b"1"
    crashed = trio.run(plane(RuntimeError("a bug")), post())
    assert crashed.body == bytes.fromhex("30030a0102")  # internalError, not a dropped socket


def test_the_fast_path_sends_what_the_full_path_sends() -> None:
    got = answer(7)
    cache = AnswerCache(10, clock=Clock())
    cache.put(("u", 7, 0), got)
    cache.remember_url(b"/abc", ("u", 7, 0))
    dp = plane(got, cache)
    request = Request(b"GET", b"/abc", {}, b"", True, False)
    fast = dp.fast(request)
    assert fast is not None
    full = serialize(dp._ocsp_response(request, got, int(START)), True, False)
    # The same header lines (Date aside: the HTTP layer's clock), the same body.
    assert {**header_map(fast), b"Date": b""} == {**header_map(full), b"Date": b""}
    assert fast.endswith(got.der)
    assert dp.fast(Request(b"GET", b"/other", {}, b"", True, False)) is None
