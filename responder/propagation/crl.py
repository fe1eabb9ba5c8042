"""What a CRL publication leaves behind: its record (the report's publication history),
the ledger's "first listed on a CRL" step of the revocations new on it, and the purge of
the shard at every CDN (queued durably, cdn/purger.py)."""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..cdn.tags import crl_tag
from ..store import Store
from .ledger import Ledger

if TYPE_CHECKING:
    from crlgen.generator import Publication


def publication_hook(
    store: Store, ledger: Ledger | None, purge: bool
) -> "Callable[[Publication], Awaitable[None]]":
    async def on_published(pub: "Publication") -> None:
        await store.record_crl_publication(
            pub.issuer,
            {
                "shard": str(pub.shard),
                "file": pub.file,
                "number": str(pub.number),
                "this_update": str(pub.this_update),
                "published_ms": str(pub.published_ms),
                "origins": ",".join(pub.origins),
                "new_entries": str(len(pub.listed)),
            },
        )
        if ledger is not None and pub.listed:
            for origin in pub.origins:
                await ledger.mark(
                    pub.issuer, f"crl:{origin}", dict.fromkeys(pub.listed, pub.published_ms)
                )
            await ledger.mark(pub.issuer, "crl_number", dict.fromkeys(pub.listed, pub.number))
        if purge:
            await store.queue_purge(
                [crl_tag(pub.issuer, pub.shard)], f"crl {pub.file} #{pub.number}"
            )

    return on_published
