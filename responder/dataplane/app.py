"""The public data plane: OCSP over GET and POST, CRL files, /healthz.

HTTP caching follows RFC 9919 section 6: Last-Modified = thisUpdate, Expires =
nextUpdate, ETag = quoted hex SHA-256 of the body, Cache-Control max-age ending
before the next planned re-sign, and 304 on If-None-Match / If-Modified-Since.
Error answers carry `max-age=0, no-cache`.
"""

import logging
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path

import trio

from ..answers.sources import Answer, AnswerCache, AnswerSource, Query
from ..http.protocol import Request, Response, date_header, http_date, plain
from ..observability import metrics
from ..ocsp import MalformedRequest, ResponseStatus, decode_get, decode_request
from .crlfiles import CrlFiles

log = logging.getLogger("revocd.dataplane")
_FROM_CACHE = metrics.ANSWER_SOURCE.labels("cache")
_LATENCY = metrics.OCSP_LATENCY

OCSP_TYPE = b"application/ocsp-response"
NO_CACHE = b"max-age=0, no-cache"
RETRY_AFTER = b"1"
STATUS_RESULT = {
    ResponseStatus.MALFORMED_REQUEST: "malformed",
    ResponseStatus.INTERNAL_ERROR: "internal_error",
    ResponseStatus.TRY_LATER: "try_later",
    ResponseStatus.SIG_REQUIRED: "sig_required",
    ResponseStatus.UNAUTHORIZED: "unauthorized",
}


# The fields of a 200 that its 304 carries (RFC 9110 15.4.5); Last-Modified is left out
# because every answer and CRL file here has an ETag.
NOT_MODIFIED_HEADERS = frozenset({b"Cache-Control", b"ETag", b"Expires", b"Vary"})


def _not_modified(request: Request, etag: bytes, last_modified: int) -> bool:
    inm = request.headers.get(b"if-none-match")
    if inm is not None:
        tags = [t.strip() for t in inm.split(b",")]
        return b"*" in tags or etag in tags or (b"W/" + etag) in tags
    ims = request.headers.get(b"if-modified-since")
    if ims is not None:
        try:
            since = int(parsedate_to_datetime(ims.decode("latin-1")).timestamp())
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
        return last_modified <= since
    return False


_counters: dict[tuple[str, str], object] = {}


def _count(method: str, result: str) -> None:
    counter = _counters.get((method, result))
    if counter is None:
        counter = _counters[(method, result)] = metrics.OCSP_REQUESTS.labels(method, result)
    counter.inc()  # type: ignore[attr-defined]


@dataclass
class DataPlane:
    chain: AnswerSource
    ocsp_prefix: str = "/"
    crl_dir: Path | None = None
    crl_prefix: str = "/crl/"
    crl_max_age: int = 3600
    cache: AnswerCache | None = None
    # server.cache_max_age_seconds: an upper bound on every max-age (0: none), so CDNs
    # pick up a revocation within this many seconds instead of at the next re-sign
    max_age_cap: int = 0
    # CRL file name -> seconds between planned publications, so caches keep a CRL at most
    # until the next planned one (and at most crl_max_age, since changes publish earlier)
    crl_republish: dict[str, int] = field(default_factory=dict)
    # server.limits.shed_pause_ms: how long a connection told tryLater is not read
    shed_pause: float = 0.0
    _fast_counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.crl_files = CrlFiles(self.crl_dir) if self.crl_dir is not None else None
        if self.max_age_cap:
            self.crl_max_age = min(self.crl_max_age, self.max_age_cap)

    def _ocsp_max_age(self, refresh_at: int, now: int) -> int:
        age = max(0, refresh_at - now)
        return min(age, self.max_age_cap) if self.max_age_cap else age

    async def flush_metrics(self, interval: float = 1.0) -> None:
        """Move the fast path's local counts into the Prometheus counters."""
        while True:
            await trio.sleep(interval)
            self.flush_counts()

    def flush_counts(self) -> None:
        counts, self._fast_counts = self._fast_counts, {}
        for result, n in counts.items():
            metrics.OCSP_REQUESTS.labels("GET", result).inc(n)
            _FROM_CACHE.inc(n)

    def fast(self, request: Request) -> bytes | None:
        """Complete response bytes for a repeated plain GET found by URL in the cache
        (CDNs and stapling servers), or None to take the full path."""
        cache = self.cache
        if cache is None or request.method != b"GET" or request.http10:
            return None
        headers = request.headers
        if b"if-none-match" in headers or b"if-modified-since" in headers:
            return None
        now = int(time.time())
        answer = cache.get_url(request.target, now)
        if answer is None:
            return None
        _count("GET", answer.cert_status)
        _FROM_CACHE.inc()
        return b"".join(
            (
                b"HTTP/1.1 200 OK\r\nDate: ",
                date_header.now(),
                b"\r\n",
                answer.header_block,
                b"Cache-Control: max-age=%d, public, no-transform, must-revalidate\r\n"
                b"Content-Length: %d\r\n\r\n"
                % (self._ocsp_max_age(answer.refresh_at, now), len(answer.der)),
                answer.der,
            )
        )

    async def __call__(self, request: Request) -> Response:
        method = request.method
        target = request.target.decode("latin-1")
        path = target.split("?", 1)[0]
        if path == "/healthz":
            return Response(
                200,
                [(b"Content-Type", b"text/plain"), (b"Cache-Control", b"no-store")],
                b"ok\n",
                head_only=method == b"HEAD",
            )
        if self.crl_dir is not None and path.startswith(self.crl_prefix):
            if method not in (b"GET", b"HEAD"):
                return plain(405, b"method not allowed", [(b"Allow", b"GET, HEAD")])
            return await self._file(request, path[len(self.crl_prefix) :])
        if method == b"POST":
            if path.rstrip("/") != self.ocsp_prefix.rstrip("/"):
                return plain(404, b"not found")
            return await self._ocsp(request, "POST", lambda: decode_request(request.body), None)
        if method in (b"GET", b"HEAD"):
            if path == self.ocsp_prefix.rstrip("/") or path == "/":
                return plain(404, b"not found")
            return await self._ocsp(
                request,
                "GET",
                lambda: decode_get(target, self.ocsp_prefix),
                request.target if method == b"GET" else None,
            )
        return plain(405, b"method not allowed", [(b"Allow", b"GET, HEAD, POST")])

    async def _ocsp(
        self, request: Request, method: str, decode: object, target: bytes | None
    ) -> Response:
        started = time.perf_counter()
        try:
            ocsp_request = decode()  # type: ignore[operator]
        except MalformedRequest as exc:
            log.debug("malformed OCSP request: %s", exc)
            answer = Answer.error(ResponseStatus.MALFORMED_REQUEST)
        else:
            try:
                answer = await self.chain.lookup(Query(ocsp_request, target=target))
            except Exception:
                log.exception("answer chain failed")
                answer = Answer.error(ResponseStatus.INTERNAL_ERROR)
        _count(method, answer.cert_status or STATUS_RESULT.get(answer.status, "error"))
        response = self._ocsp_response(request, answer, int(time.time()))
        _LATENCY.observe(time.perf_counter() - started)
        return response

    def _ocsp_response(self, request: Request, answer: Answer, now: int) -> Response:
        head = request.method == b"HEAD"
        if answer.status is not ResponseStatus.SUCCESSFUL:
            headers = [(b"Content-Type", OCSP_TYPE), (b"Cache-Control", NO_CACHE)]
            pause = 0.0
            if answer.status is ResponseStatus.TRY_LATER:
                # RFC 9110 section 10.2.3: when to come back. One second: overload and
                # store hiccups are short, and a client retrying sooner only adds load.
                headers.append((b"Retry-After", RETRY_AFTER))
                pause = self.shed_pause
            return Response(200, headers, answer.der, head_only=head, pause=pause)
        if answer.cacheable:
            cache_control = (
                b"max-age=%d, public, no-transform, must-revalidate"
                % self._ocsp_max_age(answer.refresh_at, now)
            )
        else:  # an echoed nonce makes the answer good for this request only
            cache_control = NO_CACHE
        headers = [(b"Cache-Control", cache_control)]
        if (
            answer.cacheable
            and request.method != b"POST"
            and (b"if-none-match" in request.headers or b"if-modified-since" in request.headers)
            and _not_modified(request, answer.etag, answer.this_update)
        ):
            # RFC 9110 15.4.5: a 304 repeats Cache-Control, Expires and the validator,
            # and no other representation metadata (no Content-Type, no Last-Modified
            # next to an ETag).
            return Response(304, headers, raw_headers=answer.not_modified_block)
        return Response(200, headers, answer.der, head_only=head, raw_headers=answer.header_block)

    def _crl_age(self, name: str, mtime: int) -> int:
        interval = self.crl_republish.get(name)
        if interval is None:
            return self.crl_max_age
        return max(0, min(self.crl_max_age, mtime + interval - int(time.time())))

    async def _file(self, request: Request, name: str) -> Response:
        assert self.crl_files is not None
        found = await self.crl_files.get(name)
        if found is None:
            return plain(404, b"not found")
        etag, mtime, body = found.etag, found.mtime, found.body
        headers = [
            (b"Content-Type", found.content_type),
            (b"Last-Modified", http_date(mtime)),
            (b"ETag", etag),
            (
                b"Cache-Control",
                b"max-age=%d, public, no-transform, must-revalidate" % self._crl_age(name, mtime),
            ),
        ]
        if _not_modified(request, etag, mtime):
            return Response(304, [h for h in headers if h[0] in NOT_MODIFIED_HEADERS])
        return Response(200, headers, body, head_only=request.method == b"HEAD")
