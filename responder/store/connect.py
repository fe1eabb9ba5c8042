"""Open the store a configuration names, starting the embedded one when it names none."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..config import Config
from ..failures import describe, recoverable
from ..observability import metrics
from .embedded import EmbeddedStore
from .store import Store

log = logging.getLogger("revocd.store")


@asynccontextmanager
async def open_configured_store(config: Config) -> AsyncIterator[Store]:
    embedded: EmbeddedStore | None = None
    url = config.store.url
    if not url:
        embedded = EmbeddedStore(config.state_dir)
        url = await trio.to_thread.run_sync(embedded.start)
    try:
        async with Store.open(url, config.store) as store, trio.open_nursery() as nursery:
            await store.register_issuers(config.issuers.values())
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
