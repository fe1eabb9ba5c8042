"""IssuerFilter: each CertID hash algorithm finds its issuer; anything else is
unauthorized and never reaches the next source."""

import pytest
import trio

from responder.answers.answer import Unauthorized
from responder.answers.filter import IssuerFilter
from responder.ocsp import HashAlgorithm

from .fakes import Scripted, answer, question, runtime


@pytest.mark.parametrize("alg", list(HashAlgorithm))
def test_every_hash_algorithm_finds_the_issuer_and_hands_it_on(alg: HashAlgorithm) -> None:
    a, _ = runtime("a")
    b, _ = runtime("b")
    inner = Scripted([answer()])
    chain = IssuerFilter(inner, [a, b])
    got = trio.run(chain.answer, question(b, 5, alg=alg, with_issuer=False))
    assert got == answer()
    assert inner.asked[0].issuer is b


def test_an_unknown_issuer_is_unauthorized() -> None:
    a, _ = runtime("a")
    stranger, _ = runtime("stranger")
    inner = Scripted([answer()])
    with pytest.raises(Unauthorized):
        trio.run(IssuerFilter(inner, [a]).answer, question(stranger, 5, with_issuer=False))
    assert inner.asked == []


def test_cert_ids_of_two_issuers_in_one_request_are_unauthorized() -> None:
    a, _ = runtime("a")
    b, _ = runtime("b")
    mixed = question(a, 1, with_issuer=False)
    other = question(b, 2, with_issuer=False)
    mixed = type(mixed)(
        type(mixed.request)([*mixed.request.cert_ids, *other.request.cert_ids], None, False)
    )
    with pytest.raises(Unauthorized):
        trio.run(IssuerFilter(Scripted([answer()]), [a, b]).answer, mixed)


def test_the_question_passed_on_is_a_copy() -> None:
    """Sources never change what they were given (the request is immutable)."""
    a, _ = runtime("a")
    inner = Scripted([answer()])
    asked = question(a, 3, with_issuer=False)
    trio.run(IssuerFilter(inner, [a]).answer, asked)
    assert asked.issuer is None and inner.asked[0] is not asked
    with pytest.raises(AttributeError):
        asked.issuer = a  # type: ignore[misc]
