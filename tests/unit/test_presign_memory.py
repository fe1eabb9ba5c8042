"""The pre-signer on the in-memory store with a fixed clock: what is due is signed, once,
and again when its re-sign time comes; changes make answers due; nothing expired or
signed from an old status is stored. (tests/integration/test_presign.py runs it on Valkey.)"""

import time
from pathlib import Path

import trio
from asn1crypto import ocsp as asn1_ocsp

from responder.answers.issuers import IssuerRuntime
from responder.config import IssuerConfig
from responder.domain.events import Event, EventType
from responder.domain.timing import DAY, Schedule
from responder.ocsp.types import RevocationReason
from responder.policy import Policy
from responder.presign import Presigner, PresignSettings
from responder.signing import ResponderIdentity, SoftwareSigner
from responder.store.memory import MemoryStore
from responder.testing import pki

START = float(int(time.time()))
_PKI: dict[str, object] = {}


def runtime() -> IssuerRuntime:
    if not _PKI:
        root = pki.make_root("unit root")
        issuer = pki.make_intermediate("unit issuer", root)
        _PKI.update(issuer=issuer, responder=pki.make_responder(issuer))
    issuer, responder = _PKI["issuer"], _PKI["responder"]
    config = IssuerConfig("u", Path("u.pem"), Policy.PRIVATE, partitions=4)
    identity = ResponderIdentity(SoftwareSigner(responder.key), issuer.cert, responder.cert)
    return IssuerRuntime(config, identity, Schedule(validity=4 * DAY - 1))


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def issued(serial: int, not_after: float) -> Event:
    return Event(EventType.ISSUED, "u", serial, not_after=int(not_after))


def status(der: bytes) -> str:
    basic = asn1_ocsp.OCSPResponse.load(der).basic_ocsp_response
    return basic["tbs_response_data"]["responses"][0]["cert_status"].name


async def setup(clock: Clock, events: list[Event]) -> tuple[MemoryStore, Presigner]:
    store = MemoryStore(clock)
    issuer = runtime()
    await store.register_issuers([issuer.config])
    for event in events:
        await store.apply_events("u", event.serial % 4, [event], 1)
    return store, Presigner(store, [issuer], PresignSettings(batch=16), clock=clock)


def test_due_answers_are_signed_once_then_again_at_their_re_sign_time():
    clock = Clock()
    serials = list(range(100, 140))

    async def main():
        store, presigner = await setup(
            clock, [issued(s, START + 30 * DAY) for s in serials] + [issued(7, START - 1)]
        )
        first = await presigner.sweep()
        second = await presigner.sweep()
        clock.now += 4 * DAY - 1 - 8 * 3600  # every re-sign time (and its jitter) passed
        third = await presigner.sweep()
        answers = [await store.get_answer("u", s) for s in serials]
        return first, second, third, answers, await store.get_answer("u", 7)

    first, second, third, answers, expired = trio.run(main)
    assert (first, second, third) == (40, 0, 40)
    assert all(a is not None and a.this_update > START for a in answers)
    assert expired is None  # expired before the first sweep: never signed


def test_a_revocation_makes_its_answer_due_and_the_next_one_says_revoked():
    clock = Clock()

    async def main():
        store, presigner = await setup(clock, [issued(5, START + 30 * DAY)])
        await presigner.sweep()
        good = await store.get_answer("u", 5)
        revoke = Event(
            EventType.REVOKED, "u", 5, revoked_at=int(START), reason=RevocationReason.SUPERSEDED
        )
        await store.apply_events("u", 1, [revoke], 1)
        gone = await store.get_answer("u", 5)
        stored = await presigner.sweep()
        return good, gone, stored, await store.get_answer("u", 5)

    good, gone, stored, revoked = trio.run(main)
    assert status(good.der) == "good" and gone is None
    assert stored == 1 and status(revoked.der) == "revoked"


def test_an_answer_signed_before_a_change_is_not_stored():
    clock = Clock()

    async def main():
        store, presigner = await setup(clock, [issued(9, START + 30 * DAY)])
        stale = await store.get_record("u", 9)
        hold = Event(
            EventType.REVOKED,
            "u",
            9,
            revoked_at=int(START),
            reason=RevocationReason.CERTIFICATE_HOLD,
        )
        await store.apply_events("u", 1, [hold], 1)
        kept = await presigner.sign_and_store(presigner.issuers["u"], [stale], "test")
        return kept, await store.get_answer("u", 9)

    assert trio.run(main) == (0, None)
