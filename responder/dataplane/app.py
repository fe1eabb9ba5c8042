"""The public data plane: OCSP over GET and POST, CRL files, /healthz.

This is the only place response headers are built: the answer chain returns an
`Answer` (DER and times) or raises an `AnswerError`, and this module turns either
into HTTP.

HTTP caching follows RFC 9919 section 6: Last-Modified = thisUpdate, Expires =
nextUpdate, ETag = quoted hex SHA-256 of the body, Cache-Control max-age ending
before the next planned re-sign, and 304 on If-None-Match / If-Modified-Since.
An answer no cache may keep (an echoed nonce, several CertIDs) gets none of the
validators, only `max-age=0, no-cache`, and so costs no hashing or date formatting.
Error answers carry `max-age=0, no-cache` too.
"""

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TypeVar

from ..answers.answer import Answer, AnswerError, AnswerSource, Question, TryLater
from ..answers.arena import STATUS_NAMES
from ..answers.cache import AnswerCache
from ..answers.filter import issuer_index
from ..answers.inline import InlineAnswers
from ..answers.issuers import IssuerRuntime
from ..cdn.tags import CdnHeaders, issuer_tag, serial_tag
from ..domain.answering import issuer_of
from ..http._reactor_py import CLOSE, KEEP_10, render
from ..http.protocol import (
    Limits,
    Request,
    Response,
    date_header,
    http_date,
    plain,
    serialize,
)
from ..http.reactor import ArenaReader, Reactor
from ..http.server import HttpServer
from ..observability import metrics
from ..observability.logs import LogBudget
from ..ocsp import (
    MalformedRequest,
    OCSPRequest,
    ResponseStatus,
    decode_get,
    decode_request,
    error_response,
)
from .aia import AiaFile
from .crlfiles import CrlFiles

log = logging.getLogger("revocd.dataplane")
_Raw = TypeVar("_Raw", bytes, str)
_FROM_CACHE = metrics.ANSWER_SOURCE.labels("cache")
_LATENCY = metrics.OCSP_LATENCY

OCSP_TYPE = b"application/ocsp-response"
NO_CACHE = b"max-age=0, no-cache"
RETRY_AFTER = b"1"


def etag_of(der: bytes) -> bytes:
    return b'"' + hashlib.sha256(der).hexdigest().encode() + b'"'


def validators(answer: Answer, etag: bytes | None = None) -> bytes:
    """Expires and ETag: what a 304 for the answer repeats (RFC 9110 15.4.5)."""
    etag = etag_of(answer.der) if etag is None else etag
    return b"Expires: " + http_date(answer.next_update) + b"\r\nETag: " + etag + b"\r\n"


def ocsp_head(answer: Answer, etag: bytes | None = None) -> bytes:
    """The header lines of a cacheable answer that do not change per request, formatted
    once per answer (the cache keeps them next to it for the fast path)."""
    return (
        b"Content-Type: application/ocsp-response\r\nLast-Modified: "
        + http_date(answer.this_update)
        + b"\r\n"
        + validators(answer, etag)
    )


# The fields of a 200 that its 304 carries (RFC 9110 15.4.5); Last-Modified is left out
# because every answer and CRL file here has an ETag.
NOT_MODIFIED_HEADERS = frozenset({b"Cache-Control", b"ETag", b"Expires", b"Vary"})
# ...and what a CDN reads to file and keep a revalidated response
NOT_MODIFIED_CDN = NOT_MODIFIED_HEADERS | {
    b"CDN-Cache-Control",
    b"xkey",
    b"Surrogate-Key",
    b"Cache-Tag",
    b"Edge-Cache-Tag",
}


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
# What _ocsp_response needs to know of a POST the reactor answers: not HEAD, no
# conditional headers (POSTs get no 304).
_POST = Request(b"POST", b"/", {}, b"", True, False)
_INLINE_TRACEBACKS = LogBudget(10)


def _count(method: str, result: str, n: int = 1) -> None:
    counter = _counters.get((method, result))
    if counter is None:
        counter = _counters[(method, result)] = metrics.OCSP_REQUESTS.labels(method, result)
    counter.inc(n)  # type: ignore[attr-defined]


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
    clock: Callable[[], float] = time.time
    # The host's answer arena (server.shared_cache_mb): GET answers are read from it,
    # by the reactor and by `fast`; None: from the process's cache by URL.
    arena: ArenaReader | None = None
    # What the chain answers without waiting, for POSTs the reactor answers in place
    inline: InlineAnswers | None = None
    # [cdn]: cache tags and CDN-Cache-Control on answers, CRLs and AIA files. With
    # either, GETs take the full path (the reactor's rendering has no room for them).
    cdn: CdnHeaders = field(default_factory=CdnHeaders)
    # The issuers, to name the one an answer is about (cache tags, the ledger)
    issuers: list[IssuerRuntime] = field(default_factory=list)
    # CRL file name -> its cache tags and validity (seconds from publication to
    # nextUpdate)
    crl_tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    crl_validity: dict[str, int] = field(default_factory=dict)
    # Request path -> an issuer's AIA file (dataplane/aia.py)
    aia: dict[str, AiaFile] = field(default_factory=dict)
    # Told (issuer, serial) when a `revoked` answer is served: the propagation
    # ledger's "served" step (propagation/ledger.py). Must not block.
    on_revoked: Callable[[str, int], None] | None = None

    def __post_init__(self) -> None:
        self.crl_files = CrlFiles(self.crl_dir) if self.crl_dir is not None else None
        if self.max_age_cap:
            self.crl_max_age = min(self.crl_max_age, self.max_age_cap)
        self._issuer_index = issuer_index(self.issuers)
        self._cdn = self.cdn.enabled  # read on every cached GET

    def _issuer_name(self, request: OCSPRequest) -> str | None:
        found = issuer_of(request.cert_ids, self._issuer_index)
        return found.name if found is not None else None

    def _served(self, request: OCSPRequest, answer: Answer) -> None:
        """The ledger's note of a `revoked` answer leaving the origin."""
        if self.on_revoked is None or answer.cert_status != "revoked":
            return
        name = self._issuer_name(request)
        if name is not None:
            for cert_id in request.cert_ids:
                self.on_revoked(name, cert_id.serial)

    def _ocsp_max_age(self, refresh_at: int, now: int) -> int:
        age = max(0, refresh_at - now)
        return min(age, self.max_age_cap) if self.max_age_cap else age

    def count_hits(self, good: int, revoked: int, unknown: int) -> None:
        """Answers the reactor served from the arena, by status."""
        for name, n in zip(STATUS_NAMES, (good, revoked, unknown), strict=True):
            if n:
                _count("GET", name, n)
        _FROM_CACHE.inc(good + revoked + unknown)

    @property
    def post_targets(self) -> tuple[bytes, ...]:
        """The request targets a POST is answered at (the OCSP path, with and without a
        trailing slash), as __call__ routes them."""
        path = self.ocsp_prefix.rstrip("/")
        return (b"/",) if not path else (path.encode(), path.encode() + b"/")

    def post_inline(self, body: bytes, mode: int = 0) -> bytes | None:
        """The complete response to a POST of `body` when the chain can give it without
        waiting (answers/inline.py), counted as the full path counts it; None: the full
        path answers (malformed requests included, so their counting and logging stay
        in one place). `mode`: the connection the request asked for (the reactor's
        KEEP, KEEP_10 or CLOSE), which the response's Connection line follows."""
        inline = self.inline
        if inline is None:
            return None
        started = time.perf_counter()
        try:
            request = decode_request(body)
        except MalformedRequest:
            return None
        try:
            answer = inline.answer(Question(request))
            if answer is None:
                return None
            response = self._ocsp_response(_POST, answer, int(self.clock()))
            self._served(request, answer)
        except Exception:
            # A bug on the inline path only: the full path answers the request, which
            # may never meet it, so it is counted and logged here.
            metrics.HTTP_INTERNAL_ERRORS.inc()
            if _INLINE_TRACEBACKS.allow():
                log.exception("inline POST answer failed (a revocd bug); the full path answers")
            return None
        raw = serialize(response, mode != CLOSE, mode == KEEP_10)
        _count("POST", answer.cert_status)
        _LATENCY.observe(time.perf_counter() - started)
        return raw

    def fast(self, request: Request) -> bytes | None:
        """Complete response bytes for a repeated plain GET found by URL in the arena
        or the cache (CDNs and stapling servers), or None to take the full path. With
        the arena these are the reactor's bytes (the engine's differential tests hold
        its rendering to `render`)."""
        cache = self.cache
        if cache is None or request.method != b"GET" or request.http10 or self._cdn:
            return None
        headers = request.headers
        if b"if-none-match" in headers or b"if-modified-since" in headers:
            return None
        now = int(self.clock())
        if self.arena is not None:
            record = self.arena.lookup(request.target, now)
            if record is None:
                return None
            _count("GET", STATUS_NAMES[record.status])
            _FROM_CACHE.inc()
            return render(record, date_header.now(), now, self.max_age_cap)
        entry = cache.get_url(request.target, now)
        if entry is None:
            return None
        answer = entry.answer
        if not entry.head:
            entry.head = ocsp_head(answer)
        _count("GET", answer.cert_status)
        _FROM_CACHE.inc()
        return b"".join(
            (
                b"HTTP/1.1 200 OK\r\nDate: ",
                date_header.now(),
                b"\r\n",
                entry.head,
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
        aia = self.aia.get(path)
        if aia is not None:
            if method not in (b"GET", b"HEAD"):
                return plain(405, b"method not allowed", [(b"Allow", b"GET, HEAD")])
            return self._aia(request, aia)
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
            return await self._ocsp(request, "POST", decode_request, request.body, None)
        if method in (b"GET", b"HEAD"):
            if path == self.ocsp_prefix.rstrip("/") or path == "/":
                return plain(404, b"not found")
            return await self._ocsp(
                request,
                "GET",
                lambda t: decode_get(t, self.ocsp_prefix),
                target,
                request.target if method == b"GET" else None,
            )
        return plain(405, b"method not allowed", [(b"Allow", b"GET, HEAD, POST")])

    async def _ocsp(
        self,
        request: Request,
        method: str,
        decode: Callable[[_Raw], OCSPRequest],
        raw: _Raw,
        target: bytes | None,
    ) -> Response:
        started = time.perf_counter()
        result, response = await self._answer(request, decode, raw, target)
        _count(method, result)
        # every answer, errors included: a tryLater under overload is what operators
        # need to see in the latency histogram
        _LATENCY.observe(time.perf_counter() - started)
        return response

    async def _answer(
        self,
        request: Request,
        decode: Callable[[_Raw], OCSPRequest],
        raw: _Raw,
        target: bytes | None,
    ) -> tuple[str, Response]:
        """The result label (revocd_ocsp_requests_total) and the response."""
        try:
            question = Question(decode(raw), target=target)
        except MalformedRequest as exc:
            log.debug("malformed OCSP request: %s", exc)
            return "malformed", self._error(request, ResponseStatus.MALFORMED_REQUEST)
        try:
            answer = await self.chain.answer(question)
        except AnswerError as exc:
            response = self._error(request, exc.status)
            if isinstance(exc, TryLater):
                # RFC 9110 section 10.2.3: when to come back. One second: overload and
                # store hiccups are short, and a client retrying sooner only adds load.
                response.headers.append((b"Retry-After", RETRY_AFTER))
                response.pause = self.shed_pause
            return exc.result, response
        except Exception:
            log.exception("answer chain failed")
            return "internal_error", self._error(request, ResponseStatus.INTERNAL_ERROR)
        self._served(question.request, answer)
        response = self._ocsp_response(request, answer, int(self.clock()))
        if self.cdn.enabled and answer.cacheable and response.status in (200, 304):
            name = self._issuer_name(question.request)
            tags = (issuer_tag(name), serial_tag(name, question.single.serial)) if name else ()
            response.headers.extend(self.cdn.lines(tags, answer.next_update - int(self.clock())))
        return answer.cert_status, response

    def _error(self, request: Request, status: ResponseStatus) -> Response:
        """An unsigned OCSP error (RFC 6960 4.2.1): HTTP 200, never cached."""
        headers = [(b"Content-Type", OCSP_TYPE), (b"Cache-Control", NO_CACHE)]
        return Response(200, headers, error_response(status), head_only=request.method == b"HEAD")

    def _ocsp_response(self, request: Request, answer: Answer, now: int) -> Response:
        head = request.method == b"HEAD"
        if not answer.cacheable:
            # An echoed nonce makes the answer good for this request only: no
            # validators, nothing a cache could use.
            headers = [(b"Content-Type", OCSP_TYPE), (b"Cache-Control", NO_CACHE)]
            return Response(200, headers, answer.der, head_only=head)
        cache_control = b"max-age=%d, public, no-transform, must-revalidate" % self._ocsp_max_age(
            answer.refresh_at, now
        )
        headers = [(b"Cache-Control", cache_control)]
        etag = etag_of(answer.der)  # hashed once, for the condition and the headers
        if (
            request.method != b"POST"
            and (b"if-none-match" in request.headers or b"if-modified-since" in request.headers)
            and _not_modified(request, etag, answer.this_update)
        ):
            # RFC 9110 15.4.5: a 304 repeats Cache-Control, Expires and the validator,
            # and no other representation metadata (no Content-Type, no Last-Modified
            # next to an ETag).
            return Response(304, headers, raw_headers=validators(answer, etag))
        head_lines = ocsp_head(answer, etag)
        return Response(200, headers, answer.der, head_only=head, raw_headers=head_lines)

    def _crl_age(self, name: str, mtime: int) -> int:
        interval = self.crl_republish.get(name)
        if interval is None:
            return self.crl_max_age
        return max(0, min(self.crl_max_age, mtime + interval - int(self.clock())))

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
        if self.cdn.enabled:
            validity = self.crl_validity.get(name, self.crl_max_age)
            headers.extend(
                self.cdn.lines(self.crl_tags.get(name, ()), mtime + validity - int(self.clock()))
            )
        if _not_modified(request, etag, mtime):
            return Response(304, [h for h in headers if h[0] in NOT_MODIFIED_CDN])
        return Response(200, headers, body, head_only=request.method == b"HEAD")

    def _aia(self, request: Request, aia: AiaFile) -> Response:
        """An issuer's certificate (or its bundle) at the caIssuers URL. It changes only
        when revocd is reconfigured, so caches may keep it a day (at most the cap)."""
        age = min(aia.max_age, self.max_age_cap) if self.max_age_cap else aia.max_age
        headers = [
            (b"Content-Type", aia.content_type),
            (b"Last-Modified", http_date(aia.mtime)),
            (b"ETag", aia.etag),
            (b"Cache-Control", b"max-age=%d, public, no-transform" % age),
        ]
        if self.cdn.enabled:
            headers.extend(self.cdn.lines(aia.tags, aia.expires - int(self.clock())))
        if _not_modified(request, aia.etag, aia.mtime):
            return Response(304, [h for h in headers if h[0] in NOT_MODIFIED_CDN])
        return Response(200, headers, aia.body, head_only=request.method == b"HEAD")


def http_server(
    plane: DataPlane,
    limits: Limits | None = None,
    reactor: bool = True,
    hold: Callable[[float], Awaitable[None]] | None = None,
) -> HttpServer:
    """The HTTP server for `plane`: the trio server with the plane's fast path and,
    with `reactor` (server.reactor) and the arena, the GET reactor reading it."""
    limits = limits or Limits()
    engine = None
    if reactor and plane.arena is not None and not plane.cdn.enabled:
        engine = Reactor(
            plane.arena,
            plane.count_hits,
            limits,
            cap=plane.max_age_cap,
            clock=plane.clock,
            post=plane.post_inline if plane.inline is not None else None,
            post_targets=plane.post_targets,
        )
    return HttpServer(plane, limits, fast=plane.fast, hold=hold, reactor=engine)
