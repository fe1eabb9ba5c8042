"""Open the store a configuration names, starting the embedded one when it names none."""

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from ..config import IssuerConfig, StoreConfig
from ..failures import describe, recoverable
from ..observability import metrics
from .embedded import EmbeddedStore
from .store import Store

log = logging.getLogger("revocd.store")


@asynccontextmanager
async def open_configured_store(
    settings: StoreConfig, state_dir: Path, issuers: Iterable[IssuerConfig]
) -> AsyncIterator[Store]:
    """The store of [store] with the issuers registered; with no `store.url`, the
    embedded valkey-server under `state_dir`, supervised while the store is open."""
    embedded: EmbeddedStore | None = None
    url = settings.url
    if not url:
        embedded = EmbeddedStore(state_dir)
        url = await trio.to_thread.run_sync(embedded.start)
    try:
        async with Store.open(url, settings) as store, trio.open_nursery() as nursery:
            await store.register_issuers(issuers)
            if embedded is not None:
                nursery.start_soon(_supervise, embedded)
            yield store
            nursery.cancel_scope.cancel()
    finally:
        if embedded is not None:
            await trio.to_thread.run_sync(embedded.stop)


async def _supervise(embedded: EmbeddedStore) -> None:
    """Bring the embedded server back if it dies; clients reconnect on their own."""
    while True:
        await trio.sleep(0.5)
        try:
            if await trio.to_thread.run_sync(embedded.ensure_running):
                metrics.STORE_RESTARTS.inc()
        except BaseException as exc:  # keep trying: the next tick may succeed
            if not recoverable(exc):
                raise
            log.error("could not restart the embedded store: %s", describe(exc))
