"""The answers the chain can give without waiting: for POSTs the reactor answers in
place, with no trio task (responder/http/reactor.py).

Same sources, same rules, nothing awaited: the issuer from the CertIDs, a simple
question from the process's cache, a nonce or several CertIDs signed now by a key that
signs inline, with status records from the local cache. Whenever anything would have
to wait or be refused (a miss, an HSM, the store, an unknown issuer, admission), the
answer is None and the request takes the full chain, which answers, refuses or sheds
it as it always does. So this can only answer what the chain would answer the same.
"""

from ..domain.answering import issuer_of
from ..observability import metrics
from .answer import Answer, Question
from .cache import AnswerCache
from .filter import IssuerFilter
from .live import LiveSigner

_FROM_CACHE = metrics.ANSWER_SOURCE.labels("cache")


class InlineAnswers:
    def __init__(self, issuers: IssuerFilter, cache: AnswerCache, live: LiveSigner) -> None:
        self.index = issuers.index
        self.cache = cache
        self.live = live

    def answer(self, question: Question) -> Answer | None:
        issuer = issuer_of(question.request.cert_ids, self.index)
        if issuer is None:
            return None
        question = question.with_issuer(issuer)
        if not question.simple:
            return self.live.sign_now(question)
        cid = question.single
        cache = self.cache
        hit = cache.get((issuer.name, cid.serial, cid.hash_algorithm), int(cache.clock()))
        if hit is not None:
            _FROM_CACHE.inc()
        return hit
