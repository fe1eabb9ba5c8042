"""Fakes for unit tests of the answer chain (Boulder's shape: a recording signer, a
settable clock, a source that answers what it is told), shared by tests/unit."""

from dataclasses import dataclass, field
from pathlib import Path

import trio

from responder.answers.answer import Answer, Question
from responder.answers.issuers import IssuerRuntime
from responder.config import IssuerConfig
from responder.domain.answering import NoncePolicy, UnknownAnswer
from responder.domain.timing import DAY, Schedule
from responder.ocsp import CertID, CertStatus, HashAlgorithm, OCSPRequest, SingleAnswer
from responder.signing import ResponderIdentity, SignerError, SoftwareSigner
from responder.testing import pki

START = 1_800_000_000.0  # 2027-01-15: fixed, so times in assertions are exact
_PKI: dict[str, pki.Issued] = {}


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingSigner:
    """A real key (answers verify), counting what it signs; `fail` makes it raise."""

    def __init__(self, key: SoftwareSigner) -> None:
        self.inner = key
        self.signed: list[bytes] = []
        self.fail: SignerError | None = None
        # Seconds each signature awaits (an HSM's round trip); 0 signs inline, as a
        # software key does, without yielding to other tasks.
        self.delay = 0.0

    @property
    def signature_algorithm(self) -> bytes:
        return self.inner.signature_algorithm

    @property
    def public_key_info(self) -> bytes:
        return self.inner.public_key_info

    async def sign(self, data: bytes) -> bytes:
        if self.delay:
            await trio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        self.signed.append(data)
        return self.inner.sign_sync(data)


def issuer_pki(name: str = "u") -> pki.Issued:
    if name not in _PKI:
        _PKI[name] = pki.make_intermediate(f"unit issuer {name}", pki.make_root(f"root {name}"))
    return _PKI[name]


def runtime(
    name: str = "u",
    nonce: NoncePolicy = NoncePolicy.ECHO,
    unknown: UnknownAnswer = UnknownAnswer.UNKNOWN,
) -> tuple[IssuerRuntime, RecordingSigner]:
    issued = issuer_pki(name)
    signer = RecordingSigner(SoftwareSigner(issued.key))
    config = IssuerConfig(name, Path(f"{name}.pem"), partitions=4)
    identity = ResponderIdentity(signer, issued.cert)
    rt = IssuerRuntime(config, identity, Schedule(validity=4 * DAY - 1), nonce, unknown)
    return rt, signer


def cert_id(rt: IssuerRuntime, serial: int, alg: HashAlgorithm = HashAlgorithm.SHA1) -> CertID:
    h = rt.hashes
    return CertID(int(alg), h.name_hashes[alg], h.key_hashes[alg], serial, h.cert_id(alg, serial))


def question(
    rt: IssuerRuntime,
    *serials: int,
    alg: HashAlgorithm = HashAlgorithm.SHA1,
    nonce: bytes | None = None,
    target: bytes | None = None,
    with_issuer: bool = True,
) -> Question:
    ids = [cert_id(rt, s, alg) for s in serials or (1,)]
    q = Question(OCSPRequest(ids, nonce, False), target=target)
    return q.with_issuer(rt) if with_issuer else q


def answer(
    serial: int = 1, now: float = START, source: str = "store", status: str = "good"
) -> Answer:
    schedule = Schedule(validity=4 * DAY - 1)
    this_update, next_update = schedule.window(int(now))
    single = SingleAnswer(b"cid%d" % serial, CertStatus.GOOD, this_update, next_update)
    return Answer.signed(b"der-%d" % serial, single, schedule, source, True, status)


@dataclass
class Scripted:
    """A next source that records each question and answers from a script: an Answer,
    or an exception to raise (an AnswerError, or anything else as a bug would)."""

    results: list[Answer | Exception]
    asked: list[Question] = field(default_factory=list)

    async def answer(self, q: Question) -> Answer:
        self.asked.append(q)
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(result, Exception):
            raise result
        return result
