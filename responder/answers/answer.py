"""What flows through the answer chain: the immutable question, the answer, the errors.

The shape is Boulder's OCSP responder: every source takes a `Question` it may not
change and either returns an `Answer` or raises an `AnswerError`. There is no shared
mutable state between sources; what one learns for the next (the issuer, the status
record) goes into a new `Question` (`with_issuer`, `with_record`). HTTP is not here:
the data plane (responder/dataplane/app.py) turns answers and errors into responses.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..domain.answering import cacheable, echoes_nonce
from ..domain.records import CertRecord
from ..domain.timing import Schedule
from ..ocsp import CertID, OCSPRequest, ResponseStatus, SingleAnswer
from ..store import PreSigned

if TYPE_CHECKING:
    from .issuers import IssuerRuntime


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful OCSP response and the times caching needs; no HTTP in it."""

    der: bytes
    this_update: int
    next_update: int
    refresh_at: int  # caches (ours, CDNs) keep the answer until then
    # False for an answer that echoes a nonce or covers several CertIDs: it is good for
    # the request that asked and for nobody else
    cacheable: bool
    source: str  # "cache", "store" or "live": the label of revocd_answer_source_total
    cert_status: str  # good / revoked / unknown / multi: the result label of the counter

    @classmethod
    def signed(
        cls,
        der: bytes,
        single: SingleAnswer | PreSigned,
        schedule: Schedule,
        source: str,
        cacheable: bool,
        cert_status: str,
    ) -> "Answer":
        assert single.next_update is not None
        return cls(
            der,
            single.this_update,
            single.next_update,
            schedule.refresh_at(single.this_update, single.next_update),
            cacheable,
            source,
            cert_status,
        )


class AnswerError(Exception):
    """No signed answer: the client gets the unsigned OCSP error `status`."""

    status = ResponseStatus.INTERNAL_ERROR
    # The result label of revocd_ocsp_requests_total
    result = "internal_error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TryLater(AnswerError):
    """RFC 6960 4.2.1 tryLater: revocd cannot answer now (store down, overload).

    `stale_ok` says the status could not be read, so a cached answer past its refresh
    time but before its nextUpdate is still the best answer there is (CachedSource
    serves it). An overload refusal is not stale_ok: the status is readable, and a
    client told to come back soon gets the current one."""

    status = ResponseStatus.TRY_LATER
    result = "try_later"

    def __init__(self, reason: str, stale_ok: bool = False) -> None:
        super().__init__(reason)
        self.stale_ok = stale_ok


class Unauthorized(AnswerError):
    """RFC 6960 4.2.1 / RFC 5019 2.2.3 unauthorized: not an issuer revocd answers for,
    or a serial the issuer's policy does not answer `unknown` for."""

    status = ResponseStatus.UNAUTHORIZED
    result = "unauthorized"


class CannotSign(AnswerError):
    """internalError: an answer would be wrong if signed (the responder certificate ends
    before its nextUpdate). Retrying does not help, so it is not tryLater."""


@dataclass(frozen=True, slots=True)
class Question:
    """One OCSP request on its way down the chain. Frozen: a source that learns
    something for the next passes a copy (`with_issuer`, `with_record`)."""

    request: OCSPRequest
    target: bytes | None = None  # the GET request target, for the cache's URL index
    issuer: "IssuerRuntime | None" = None
    # The status record once a source has read it; `record_known` False means nobody
    # has asked the store yet, True with record None means the serial was never issued.
    record: CertRecord | None = None
    record_known: bool = False
    # One CertID and no nonce to echo: the case caches and pre-signed answers serve
    simple: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        echoes = self.issuer is not None and echoes_nonce(self.request.nonce, self.issuer.nonce)
        object.__setattr__(self, "simple", cacheable(len(self.request.cert_ids), echoes))

    @property
    def single(self) -> CertID:
        return self.request.cert_ids[0]

    @property
    def wants_nonce(self) -> bool:
        return self.issuer is not None and echoes_nonce(self.request.nonce, self.issuer.nonce)

    # Built directly rather than with dataclasses.replace, which costs several times
    # more (it is on every request's path).
    def with_issuer(self, issuer: "IssuerRuntime") -> "Question":
        return Question(self.request, self.target, issuer, self.record, self.record_known)

    def with_record(self, record: CertRecord | None) -> "Question":
        return Question(self.request, self.target, self.issuer, record, True)


class AnswerSource(Protocol):
    """One link of the chain (Boulder's `Source`)."""

    async def answer(self, question: Question) -> Answer: ...
