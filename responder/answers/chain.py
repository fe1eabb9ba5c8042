"""The one place the answer sources meet:

    IssuerFilter → CachedSource → PresignedSource → LiveSigner

A question with a nonce the issuer echoes, or with several CertIDs, passes the cache
and the pre-signed answers untouched and is signed live. With `shared` (the host's
answer arena), the cache keeps GET answers there instead of in the process.
"""

import time
from collections.abc import Callable, Sequence

import trio

from .answer import AnswerSource
from .cache import AnswerCache, CachedSource, SharedAnswers
from .filter import IssuerFilter
from .inline import InlineAnswers
from .issuers import IssuerRuntime
from .live import AnswerWriter, LiveSigner
from .presigned import PresignedSource, RecordFetcher
from .shedding import LoopLag


def build_chain(
    issuers: Sequence[IssuerRuntime],
    cache: AnswerCache,
    writer: AnswerWriter,
    fetcher: RecordFetcher,
    nursery: trio.Nursery,
    live_max_pending: int,
    live_deadline: float,
    loop: LoopLag,
    clock: Callable[[], float] = time.time,
    shared: SharedAnswers | None = None,
) -> tuple[AnswerSource, InlineAnswers]:
    """The chain, and the answers it can give without waiting (the same sources)."""
    live = LiveSigner(
        writer,
        fetcher,
        cache,
        nursery,
        clock=clock,
        max_pending=live_max_pending,
        deadline=live_deadline,
        loop=loop,
    )
    presigned = PresignedSource(live, fetcher, cache, clock)
    chain = IssuerFilter(CachedSource(presigned, cache, shared), issuers)
    return chain, InlineAnswers(chain, cache, live)
