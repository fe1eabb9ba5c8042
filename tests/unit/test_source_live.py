"""LiveSigner with a recording signer, the in-memory store and a fixed clock: what it
signs (status from the record, nonce echoed by policy), what it refuses (never issued
under the unauthorized policy, signer failures), coalescing and write-back."""

import pytest
import trio
from asn1crypto import ocsp as asn1_ocsp

from responder.answers.answer import CannotSign, TryLater, Unauthorized
from responder.answers.cache import AnswerCache
from responder.answers.live import LiveSigner
from responder.answers.presigned import MissBatcher
from responder.domain.answering import NoncePolicy, UnknownAnswer
from responder.domain.events import Event, EventType
from responder.ocsp import HashAlgorithm
from responder.ocsp.types import RevocationReason
from responder.signing import SignerBusy, SignerError, ValidityExceedsCertificate
from responder.store.memory import MemoryStore

from .fakes import Clock, question, runtime


def parsed(der: bytes) -> tuple[list[str], object]:
    basic = asn1_ocsp.OCSPResponse.load(der).basic_ocsp_response
    tbs = basic["tbs_response_data"]
    statuses = [r["cert_status"].name for r in tbs["responses"]]
    nonce = None
    for ext in tbs["response_extensions"] or []:
        if ext["extn_id"].native == "nonce":
            nonce = ext["extn_value"].parsed.native
    return statuses, nonce


async def with_signer(clock: Clock, store: MemoryStore, rt, body):  # type: ignore[no-untyped-def]
    """Run `body(live)` with a LiveSigner whose nursery outlives it (write-backs), and
    give back its result or raise its error as it was raised (not in a group)."""
    result: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        batcher = MissBatcher(store)
        nursery.start_soon(batcher.run)
        live = LiveSigner(store, batcher, AnswerCache(10, clock=clock), nursery, clock=clock)
        try:
            result["value"] = await body(live)
        except Exception as exc:
            result["error"] = exc
        await trio.sleep(0.01)  # let the write-back land
        nursery.cancel_scope.cancel()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


async def setup(clock: Clock, rt) -> MemoryStore:  # type: ignore[no-untyped-def]
    store = MemoryStore(clock)
    await store.register_issuers([rt.config])
    not_after = int(clock.now) + 90 * 86400
    for serial in (1, 2):
        await store.apply_events(
            "u", serial % 4, [Event(EventType.ISSUED, "u", serial, not_after=not_after)], 1
        )
    revoke = Event(
        EventType.REVOKED,
        "u",
        2,
        revoked_at=int(clock.now) - 60,
        reason=RevocationReason.KEY_COMPROMISE,
    )
    await store.apply_events("u", 2, [revoke], 1)
    return store


def test_status_comes_from_the_record_and_the_nonce_is_echoed() -> None:
    clock = Clock()
    rt, signer = runtime()

    async def main():  # type: ignore[no-untyped-def]
        store = await setup(clock, rt)
        return await with_signer(
            clock, store, rt, lambda live: live.answer(question(rt, 1, 2, 3, nonce=b"n" * 16))
        )

    got = trio.run(main)
    statuses, nonce = parsed(got.der)
    assert statuses == ["good", "revoked", "unknown"] and nonce == b"n" * 16
    assert not got.cacheable and got.cert_status == "multi" and got.source == "live"
    assert len(signer.signed) == 1


def test_the_ignore_policy_signs_without_the_nonce_and_the_answer_is_cacheable() -> None:
    clock = Clock()
    rt, _ = runtime(nonce=NoncePolicy.IGNORE)

    async def main():  # type: ignore[no-untyped-def]
        store = await setup(clock, rt)
        return await with_signer(
            clock, store, rt, lambda live: live.answer(question(rt, 2, nonce=b"n" * 16))
        )

    got = trio.run(main)
    assert parsed(got.der) == (["revoked"], None) and got.cacheable
    assert got.this_update == int(clock.now) - rt.schedule.backdate


def test_never_issued_under_the_unauthorized_policy_is_refused() -> None:
    clock = Clock()
    rt, signer = runtime(unknown=UnknownAnswer.UNAUTHORIZED)

    async def main() -> None:
        store = await setup(clock, rt)
        await with_signer(clock, store, rt, lambda live: live.answer(question(rt, 9)))

    with pytest.raises(Unauthorized):
        trio.run(main)
    assert signer.signed == []


@pytest.mark.parametrize(
    ("failure", "raised"),
    [
        (SignerBusy("hsm queue full"), TryLater),
        (SignerError("token removed"), TryLater),
        (ValidityExceedsCertificate("ends"), CannotSign),
    ],
)
def test_signer_failures_become_typed_errors(failure: Exception, raised: type) -> None:
    clock = Clock()
    rt, signer = runtime()
    signer.fail = failure  # type: ignore[assignment]

    async def main() -> None:
        store = await setup(clock, rt)
        await with_signer(clock, store, rt, lambda live: live.answer(question(rt, 1)))

    with pytest.raises(raised):
        trio.run(main)


def test_store_down_is_try_later_with_stale_ok() -> None:
    clock = Clock()
    rt, _ = runtime()

    async def main() -> None:
        store = await setup(clock, rt)
        store.down = True
        await with_signer(clock, store, rt, lambda live: live.answer(question(rt, 1, 2)))

    with pytest.raises(TryLater) as raised:
        trio.run(main)
    assert raised.value.stale_ok


def test_identical_questions_share_one_signature_and_it_is_written_back() -> None:
    """While a signature is awaited (an HSM), identical questions wait for it."""
    clock = Clock()
    rt, signer = runtime()
    signer.delay = 0.005
    got = []

    async def main() -> MemoryStore:
        store = await setup(clock, rt)

        async def many(live: LiveSigner) -> None:
            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(lambda: _one(live))

        async def _one(live: LiveSigner) -> None:
            got.append(await live.answer(question(rt, 1)))

        await with_signer(clock, store, rt, many)
        return store

    store = trio.run(main)
    assert len(signer.signed) == 1 and len({a.der for a in got}) == 1
    kept = store.answers[("u", 1)]
    assert kept.der == got[0].der  # the next process serves it from the store


def test_a_sha256_cert_id_answer_is_not_written_back() -> None:
    """The store keeps SHA-1 answers only (what the pre-signer makes)."""
    clock = Clock()
    rt, _ = runtime()

    async def main() -> MemoryStore:
        store = await setup(clock, rt)
        await with_signer(
            clock, store, rt, lambda live: live.answer(question(rt, 1, alg=HashAlgorithm.SHA256))
        )
        return store

    assert ("u", 1) not in trio.run(main).answers


def test_a_question_that_read_a_newer_record_does_not_share_an_older_signature() -> None:
    """While the first signature is awaited (an HSM), the serial is revoked and a second
    identical question reads the new record: it gets its own, revoked, answer, never
    the good one signed from the record before (a cache would keep that as current)."""
    from responder.domain.records import CertRecord, Status

    clock = Clock()
    rt, signer = runtime()
    signer.delay = 0.005
    now = int(clock.now)
    good = CertRecord(1, Status.GOOD, now + 86400, version=1, updated_at=now, crl_shard=0)
    revoked = CertRecord(
        1,
        Status.REVOKED,
        now + 86400,
        version=2,
        updated_at=now,
        crl_shard=0,
        revoked_at=now - 60,
        reason=RevocationReason.KEY_COMPROMISE,
    )
    got: dict[str, str] = {}

    async def main() -> None:
        store = await setup(clock, rt)

        async def both(live: LiveSigner) -> None:
            async def ask(name: str, record: CertRecord) -> None:
                answer = await live.answer(question(rt, 1).with_record(record))
                got[name] = answer.cert_status

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, "before", good)
                await trio.sleep(0)  # the first is now awaiting its signature
                nursery.start_soon(ask, "after", revoked)

        await with_signer(clock, store, rt, both)

    trio.run(main)
    assert got == {"before": "good", "after": "revoked"}
    assert len(signer.signed) == 2
