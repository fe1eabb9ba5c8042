"""The chain's first link: which issuer a request is about, or `unauthorized`."""

from collections.abc import Sequence

from ..domain.answering import IssuerKey, issuer_of
from ..ocsp import HashAlgorithm
from .answer import Answer, AnswerSource, Question, Unauthorized
from .issuers import IssuerRuntime


def issuer_index(issuers: Sequence[IssuerRuntime]) -> dict[IssuerKey, IssuerRuntime]:
    """(hash algorithm, name hash, key hash) -> issuer. Every hash algorithm a client may
    use for the CertID (SHA-1 by RFC 5019, the SHA-2 family by RFC 6960) keys the same
    issuer."""
    index: dict[IssuerKey, IssuerRuntime] = {}
    for issuer in issuers:
        for alg in HashAlgorithm:
            key = (int(alg), issuer.hashes.name_hashes[alg], issuer.hashes.key_hashes[alg])
            index[key] = issuer
    return index


class IssuerFilter:
    """Maps the request's CertIDs to one issuer revocd serves. A CertID of another
    issuer, or CertIDs of two issuers in one request, is `unauthorized` (RFC 5019
    2.2.3): revocd cannot sign for what it does not hold."""

    def __init__(self, inner: AnswerSource, issuers: Sequence[IssuerRuntime]) -> None:
        self.inner = inner
        self.index = issuer_index(issuers)

    async def answer(self, question: Question) -> Answer:
        found = issuer_of(question.request.cert_ids, self.index)
        if found is None:
            raise Unauthorized("no configured issuer matches the request's CertIDs")
        return await self.inner.answer(question.with_issuer(found))
