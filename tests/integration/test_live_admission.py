"""Live-signing admission (LiveSigner, server.limits.live_sign_*): a request that cannot be
signed within its deadline gets tryLater at once, for any signer, and the data plane
sends tryLater with Retry-After. Unit tests: a slow signer wrapping a real key, trio's
MockClock, no store (a nonce request with its record known never touches one).
The real clock is used by the loop-lag test, which is why this is not a unit test."""

import time
from pathlib import Path

import pytest
import trio
import trio.testing

from responder.answers.answer import Answer, AnswerError, Question, TryLater
from responder.answers.issuers import IssuerRuntime
from responder.answers.live import LiveSigner
from responder.config import IssuerConfig
from responder.dataplane.app import DataPlane
from responder.http.protocol import Request
from responder.observability import metrics
from responder.ocsp import CertID, HashAlgorithm, OCSPRequest, ResponseStatus
from responder.signing import ResponderIdentity, SoftwareSigner
from responder.store import CertRecord, Status
from responder.testing import pki

from .. import reqbuild
from ..unit.fakes import RecordingSigner


def slow(key: SoftwareSigner, delay: float) -> RecordingSigner:
    """A real key that takes `delay` seconds (trio time) per signature, as a loaded
    HSM or a saturated core does."""
    signer = RecordingSigner(key)
    signer.delay = delay
    return signer


@pytest.fixture(scope="module")
def issuer_pki():
    issuer = pki.make_intermediate("admission issuer", pki.make_root("admission root"))
    return issuer


def runtime(issuer: pki.Issued, delay: float) -> tuple[IssuerRuntime, RecordingSigner]:
    signer = slow(SoftwareSigner(issuer.key), delay)
    config = IssuerConfig(name="alpha", certificate=Path("unused.pem"))
    return IssuerRuntime(config, ResponderIdentity(signer, issuer.cert)), signer


def nonce_query(rt: IssuerRuntime, serial: int, nonce: bytes) -> Question:
    hashes = rt.hashes
    cid = CertID(
        int(HashAlgorithm.SHA1),
        hashes.name_hashes[HashAlgorithm.SHA1],
        hashes.key_hashes[HashAlgorithm.SHA1],
        serial,
        hashes.cert_id(HashAlgorithm.SHA1, serial),
    )
    record = CertRecord(serial, Status.GOOD, 2_000_000_000, version=1, updated_at=0, crl_shard=0)
    return Question(OCSPRequest([cid], nonce, False), issuer=rt).with_record(record)


async def outcome(source: LiveSigner, question: Question) -> ResponseStatus:
    """SUCCESSFUL for an answer, else the OCSP status of the error raised."""
    try:
        await source.answer(question)
    except AnswerError as exc:
        return exc.status
    return ResponseStatus.SUCCESSFUL


def live(max_pending: int, deadline: float) -> LiveSigner:
    # No store, cache or batcher is reached by a nonce request whose record is known.
    return LiveSigner(None, None, None, None, max_pending=max_pending, deadline=deadline)  # type: ignore[arg-type]


def shed(reason: str) -> float:
    return metrics.LIVE_SHED.labels("alpha", reason)._value.get()


def test_requests_beyond_max_pending_get_try_later_at_once(issuer_pki):
    rt, _signer = runtime(issuer_pki, delay=0.1)
    source = live(max_pending=4, deadline=5.0)
    results: list[tuple[ResponseStatus, float]] = []
    before = shed("full")

    async def one(i: int) -> None:
        start = trio.current_time()
        status = await outcome(source, nonce_query(rt, 7, b"nonce-%d" % i))
        results.append((status, trio.current_time() - start))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(one, i)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    signed = [t for status, t in results if status is ResponseStatus.SUCCESSFUL]
    refused = [t for status, t in results if status is ResponseStatus.TRY_LATER]
    assert len(signed) == 4 and len(refused) == 6
    assert all(t == 0 for t in refused)  # told at once, not after queueing
    assert shed("full") == before + 6 and source.pending == 0


def test_a_signature_slower_than_the_deadline_is_try_later_at_the_deadline(issuer_pki):
    rt, _ = runtime(issuer_pki, delay=3.0)
    source = live(max_pending=100, deadline=0.5)
    before = shed("deadline")

    async def main() -> tuple[ResponseStatus, float]:
        start = trio.current_time()
        status = await outcome(source, nonce_query(rt, 7, b"n"))
        return status, trio.current_time() - start

    status, took = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert status is ResponseStatus.TRY_LATER and took == pytest.approx(0.5)
    assert shed("deadline") == before + 1 and source.pending == 0


def test_within_the_limits_answers_are_signed(issuer_pki):
    rt, signer = runtime(issuer_pki, delay=0.01)
    source = live(max_pending=2, deadline=0.5)

    async def main() -> list[Answer]:
        return [await source.answer(nonce_query(rt, 7, b"n%d" % i)) for i in range(5)]

    answers = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert all(a.source == "live" and not a.cacheable for a in answers)
    assert len(signer.signed) == 5


class Busy:
    def __init__(self, error: AnswerError) -> None:
        self.error = error

    async def answer(self, question: Question) -> Answer:
        raise self.error


def test_try_later_carries_retry_after_and_no_cache():
    """RFC 6960 4.2.1 tryLater; RFC 9110 10.2.3 Retry-After; errors never cached."""
    body = reqbuild.request()
    request = Request(b"POST", b"/", {}, body, True, False)
    response = trio.run(DataPlane(Busy(TryLater("busy"))), request)  # type: ignore[arg-type]
    headers = dict(response.headers)
    assert headers[b"Retry-After"] == b"1"
    assert headers[b"Cache-Control"] == b"max-age=0, no-cache"
    assert response.body == bytes.fromhex("30030a0103")  # tryLater
    malformed = trio.run(
        DataPlane(Busy(TryLater("x"))), Request(b"POST", b"/", {}, b"\x30", True, False)
    )  # type: ignore[arg-type]
    assert b"Retry-After" not in dict(malformed.headers)
    assert malformed.body == bytes.fromhex("30030a0101")  # malformedRequest


class BusySigner(RecordingSigner):
    """Signs inline, spending `delay` seconds of the event loop's time per signature."""

    async def sign(self, data: bytes) -> bytes:
        time.sleep(self.delay)
        self.signed.append(data)
        return self.inner.sign_sync(data)


def test_loop_lag_from_live_signing_sheds_and_from_other_work_does_not():
    """Real clock: a flood of inline signatures makes the loop late and the excess is
    refused (reason loop_lag); a loop made late by other work (a pre-sign sweep) still
    signs the live answers asked meanwhile, as it signs a handful of concurrent ones."""
    from responder.answers.shedding import LoopLag

    issuer = pki.make_intermediate("lag issuer", pki.make_root("lag root"))
    signer = BusySigner(SoftwareSigner(issuer.key))
    signer.delay = 0.003
    config = IssuerConfig(name="alpha", certificate=Path("unused.pem"))
    rt = IssuerRuntime(config, ResponderIdentity(signer, issuer.cert))
    loop = LoopLag(limit=0.010)
    source = LiveSigner(None, None, None, None, loop=loop)  # type: ignore[arg-type]
    before = shed("loop_lag")
    flood: list[ResponseStatus] = []

    async def one(i: int) -> None:
        flood.append(await outcome(source, nonce_query(rt, 7, b"f%d" % i)))

    async def main() -> ResponseStatus:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loop.run)
            await trio.sleep(0.05)
            async with trio.open_nursery() as clients:
                for i in range(80):  # eighty requests in one pass: 240 ms of signing
                    clients.start_soon(one, i)
            await trio.sleep(0.2)  # calm again
            time.sleep(0.05)  # other work blocks the loop for 50 ms
            await trio.sleep(0)
            await trio.sleep(LoopLag.TICK * 2)
            assert loop.lag > loop.limit
            after_other_work = await outcome(source, nonce_query(rt, 7, b"o"))
            nursery.cancel_scope.cancel()
        return after_other_work

    after_other_work = trio.run(main)
    signed = flood.count(ResponseStatus.SUCCESSFUL)
    refused = flood.count(ResponseStatus.TRY_LATER)
    # The first LoopLag.FLOOR of a pass are signed whatever the lag; then the pass's
    # own signing time is over the limit and the rest are refused. The monitor may
    # tick once in the middle (real clock), which opens the floor once more.
    assert signed + refused == 80 and signed <= 2 * LoopLag.FLOOR + 2, (signed, refused)
    assert refused >= 80 - 2 * LoopLag.FLOOR - 2
    assert shed("loop_lag") == before + refused
    assert after_other_work is ResponseStatus.SUCCESSFUL


def test_signing_time_in_one_pass_counts_against_the_limit():
    """Every request of one pass sees the same lag; the time already spent signing in
    that pass is added, so a calm loop does not admit a whole flood in one pass."""
    from responder.answers.shedding import LoopLag

    loop = LoopLag(limit=0.010)
    loop.arrivals = LoopLag.FLOOR  # a flood's pass
    assert not loop.overloaded
    for _ in range(4):
        loop.charge(0.003)
    assert loop.overloaded  # 12 ms spent in this pass
    loop.arrivals = 3
    assert not loop.overloaded  # three clients: signed whatever it costs
    loop.charge(1.0)  # an awaited (HSM) lookup is not loop time
    assert loop.spent == pytest.approx(0.012)


def test_held_connections_are_released_once_calm_or_at_the_pause():
    from responder.answers.shedding import LoopLag

    loop = LoopLag(limit=0.010)

    async def main() -> tuple[float, float]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loop.run)
            start = trio.current_time()
            await loop.hold(10.0)  # calm: released at the next tick
            calm = trio.current_time() - start
            loop.limit = -1.0  # overloaded for good: held until the (jittered) pause ends
            loop.FLOOR = 0
            start = trio.current_time()
            await loop.hold(1.0)
            busy = trio.current_time() - start
            nursery.cancel_scope.cancel()
        return calm, busy

    calm, busy = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert calm <= 2 * LoopLag.TICK
    assert 0.5 <= busy <= 1.5
