"""Answers given without waiting (answers/inline.py, LiveSigner.sign_now,
DataPlane.post_inline), for the POSTs the reactor answers in place: the same answer the
chain gives when everything is at hand, None whenever the chain must decide."""

from pathlib import Path

import trio
from asn1crypto import ocsp as asn1_ocsp

from responder.answers.answer import Question
from responder.answers.cache import AnswerCache
from responder.answers.filter import IssuerFilter
from responder.answers.inline import InlineAnswers
from responder.answers.issuers import IssuerRuntime
from responder.answers.live import LiveSigner
from responder.config import IssuerConfig
from responder.dataplane.app import DataPlane
from responder.domain.answering import UnknownAnswer
from responder.domain.records import CertRecord, Status
from responder.domain.timing import DAY, Schedule
from responder.http.protocol import Request
from responder.ocsp import decode_request
from responder.ocsp.types import RevocationReason
from responder.signing import ResponderIdentity, SoftwareSigner
from responder.store.memory import MemoryStore

from .. import reqbuild as rb
from .fakes import START, Clock, answer, cert_id, issuer_pki, question, runtime
from .test_source_live import parsed


def inline_runtime(unknown: UnknownAnswer = UnknownAnswer.UNKNOWN) -> IssuerRuntime:
    """An issuer whose key signs inline (a software key), unlike fakes.runtime's
    recording signer, which awaits like an HSM."""
    issued = issuer_pki("u")
    identity = ResponderIdentity(SoftwareSigner(issued.key), issued.cert)
    config = IssuerConfig("u", Path("u.pem"), partitions=4)
    return IssuerRuntime(config, identity, Schedule(validity=4 * DAY - 1), unknown=unknown)


def record(serial: int, status: Status = Status.GOOD) -> CertRecord:
    revoked = status is Status.REVOKED
    return CertRecord(
        serial,
        status,
        int(START) + 90 * 86400,
        version=1,
        updated_at=int(START),
        crl_shard=0,
        revoked_at=int(START) - 60 if revoked else None,
        reason=RevocationReason.KEY_COMPROMISE if revoked else None,
    )


def answering(rt: IssuerRuntime, clock: Clock) -> tuple[InlineAnswers, AnswerCache, LiveSigner]:
    cache = AnswerCache(10, clock=clock)
    holder: dict[str, LiveSigner] = {}

    async def make() -> None:
        async with trio.open_nursery() as nursery:
            holder["live"] = LiveSigner(MemoryStore(clock), None, cache, nursery, clock=clock)  # type: ignore[arg-type]

    trio.run(make)
    live = holder["live"]
    return InlineAnswers(IssuerFilter(live, [rt]), cache, live), cache, live


def test_a_nonce_is_signed_now_once_the_status_record_is_in_memory() -> None:
    rt, clock = inline_runtime(), Clock()
    inline, cache, _ = answering(rt, clock)
    asked = question(rt, 7, nonce=b"n" * 16, with_issuer=False)
    assert inline.answer(asked) is None  # the record: only the full path reads the store
    cache.put_record("u", 7, record(7, Status.REVOKED), cache.epoch)
    got = inline.answer(asked)
    assert got is not None and not got.cacheable and got.source == "live"
    assert got.cert_status == "revoked"
    assert parsed(got.der) == (["revoked"], b"n" * 16)


def test_whatever_the_chain_must_decide_is_none() -> None:
    rt, clock = inline_runtime(), Clock()
    inline, cache, live = answering(rt, clock)
    cache.put_record("u", 7, record(7), cache.epoch)
    nonce = b"n" * 16
    other, _ = runtime("other")
    assert inline.answer(question(other, 7, nonce=nonce, with_issuer=False)) is None
    # never issued, under a policy that answers unauthorized: the chain refuses it
    strict = inline_runtime(UnknownAnswer.UNAUTHORIZED)
    strict_inline, strict_cache, _ = answering(strict, clock)
    strict_cache.put_record("u", 8, None, strict_cache.epoch)
    assert strict_inline.answer(question(strict, 8, nonce=nonce, with_issuer=False)) is None
    # admission: the full path sheds with tryLater and counts it
    live.pending = live.max_pending
    assert inline.answer(question(rt, 7, nonce=nonce, with_issuer=False)) is None
    live.pending = 0
    # a key that awaits (an HSM; the unit tests' recording signer)
    hsm, _ = runtime("u")
    hsm_inline, hsm_cache, _ = answering(hsm, clock)
    hsm_cache.put_record("u", 7, record(7), hsm_cache.epoch)
    assert hsm_inline.answer(question(hsm, 7, nonce=nonce, with_issuer=False)) is None


def test_a_simple_question_is_answered_from_the_process_cache_only() -> None:
    rt, clock = inline_runtime(), Clock()
    inline, cache, _ = answering(rt, clock)
    simple = question(rt, 9, with_issuer=False)
    assert inline.answer(simple) is None
    cached = answer(9)
    cache.put(("u", 9, 0), cached)
    assert inline.answer(simple) is cached


def test_post_inline_sends_what_the_full_path_sends() -> None:
    rt, clock = inline_runtime(), Clock()
    inline, cache, _ = answering(rt, clock)
    cache.put_record("u", 7, record(7), cache.epoch)
    body = rb.request(cert_ids=[cert_id(rt, 7).der], extensions=[rb.nonce_ext(b"m" * 16)])
    plane = DataPlane(None, cache=cache, inline=inline, clock=clock)  # type: ignore[arg-type]
    raw = plane.post_inline(body)
    assert raw is not None
    got = inline.answer(Question(decode_request(body)))
    assert got is not None
    head, _, der = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\nDate: ")
    assert b"Content-Type: application/ocsp-response" in head
    assert b"Cache-Control: max-age=0, no-cache" in head and b"ETag" not in head
    assert b"Content-Length: %d" % len(der) in head and b"Connection" not in head
    assert parsed(der) == (["good"], b"m" * 16)
    assert asn1_ocsp.OCSPResponse.load(der)["response_status"].native == "successful"
    # what the full path's data plane builds for the same answer, header for header
    full = plane._ocsp_response(Request(b"POST", b"/", {}, body, True, False), got, int(clock()))
    assert sorted(full.headers) == [
        (b"Cache-Control", b"max-age=0, no-cache"),
        (b"Content-Type", b"application/ocsp-response"),
    ]
    # HTTP/1.0 keep-alive and close get their Connection line
    assert b"Connection: keep-alive\r\n" in (plane.post_inline(body, 1) or b"")
    assert b"Connection: close\r\n" in (plane.post_inline(body, 2) or b"")
    # a malformed body is the full path's to answer and count
    assert plane.post_inline(b"\x30\x00") is None
    assert decode_request(body).nonce == b"m" * 16


def test_a_bug_on_the_inline_path_is_counted_logged_and_left_to_the_full_path(
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    from responder.observability import metrics

    rt, clock = inline_runtime(), Clock()
    inline, cache, _ = answering(rt, clock)

    def broken(question: Question) -> None:
        raise RuntimeError("a bug in the inline path")

    inline.answer = broken  # type: ignore[method-assign, assignment]
    plane = DataPlane(None, cache=cache, inline=inline, clock=clock)  # type: ignore[arg-type]
    body = rb.request(cert_ids=[cert_id(rt, 7).der], extensions=[rb.nonce_ext(b"m" * 16)])
    before = metrics.HTTP_INTERNAL_ERRORS._value.get()
    assert plane.post_inline(body) is None
    assert metrics.HTTP_INTERNAL_ERRORS._value.get() == before + 1
    assert "inline POST answer failed" in caplog.text and "a bug in the inline path" in caplog.text
