"""An issuer as the answer chain serves it: who signs, the hashes that find it, policy."""

from dataclasses import dataclass, field

from ..config import IssuerConfig
from ..domain.answering import ExpiredAnswer, NoncePolicy, UnknownAnswer
from ..domain.timing import Schedule
from ..observability import metrics
from ..ocsp import IssuerHashes
from ..signing import ResponderIdentity


@dataclass
class IssuerRuntime:
    config: IssuerConfig
    # Who signs: the issuer's key or a delegated responder (signing/identity.py). Unit
    # tests give it a recording fake Signer (tests/unit/fakes.py).
    identity: ResponderIdentity
    schedule: Schedule = field(default_factory=Schedule)
    nonce: NoncePolicy = NoncePolicy.ECHO
    unknown: UnknownAnswer = UnknownAnswer.UNKNOWN
    expired: ExpiredAnswer = ExpiredAnswer.LAST_STATUS
    hashes: IssuerHashes = field(init=False)
    live_signatures: "metrics.Counter" = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.hashes = IssuerHashes.from_certificate(self.identity.issuer)
        self.live_signatures = metrics.LIVE_SIGNATURES.labels(self.config.name)

    @property
    def name(self) -> str:
        return self.config.name
