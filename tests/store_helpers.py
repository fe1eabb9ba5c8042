"""Run store code from synchronous tests: each call is one trio.run with a fresh client."""

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import trio

from responder.config import IssuerConfig, StoreConfig
from responder.ingest import Ingestor
from responder.policy import Policy
from responder.store import Store

T = TypeVar("T")

ISSUERS = {
    "tls": IssuerConfig("tls", Path("tls.pem"), Policy.TLS, partitions=16, crl_shards=4),
    "smime": IssuerConfig("smime", Path("smime.pem"), Policy.SMIME, partitions=4),
}


def with_store(
    url: str,
    fn: Callable[[Store, Ingestor], Awaitable[T]],
    issuers: dict[str, IssuerConfig] | None = None,
    settings: StoreConfig | None = None,
) -> T:
    issuers = issuers or ISSUERS

    async def main() -> T:
        async with Store.open(url, settings) as store:
            await store.register_issuers(issuers.values())
            return await fn(store, Ingestor(store, issuers))

    return trio.run(main)


def issued(serial: int, issuer: str = "tls", not_after: str = "2027-06-01T00:00:00Z") -> dict:
    return {
        "type": "issued",
        "issuer": issuer,
        "serial": format(serial, "x"),
        "not_after": not_after,
    }


def revoked(
    serial: int,
    issuer: str = "tls",
    at: str = "2026-11-01T00:00:00Z",
    reason: str | None = "keyCompromise",
    **extra,
) -> dict:
    event = {
        "type": "revoked",
        "issuer": issuer,
        "serial": format(serial, "x"),
        "revoked_at": at,
        **extra,
    }
    if reason is not None:
        event["reason"] = reason
    return event
