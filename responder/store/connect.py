"""Open the store a configuration names, starting the embedded one when it names none."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..config import Config
from .embedded import EmbeddedStore
from .store import Store


@asynccontextmanager
async def open_configured_store(config: Config) -> AsyncIterator[Store]:
    embedded: EmbeddedStore | None = None
    url = config.store.url
    if not url:
        embedded = EmbeddedStore(config.state_dir)
        url = await trio.to_thread.run_sync(embedded.start)
    try:
        async with Store.open(url, config.store) as store:
            await store.register_issuers(config.issuers.values())
            yield store
    finally:
        if embedded is not None:
            await trio.to_thread.run_sync(embedded.stop)
