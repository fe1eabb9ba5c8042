"""Pre-signing: keep a signed answer in the store for every issued certificate.

This first version signs every record of an issuer in one pass (what `revocd
demo` runs at start); the data plane signs live and writes back whatever is
missing or due, so answers stay fresh between passes.
"""

import logging
import time

import trio

from .answers.sources import IssuerRuntime, single_for_record
from .ocsp import HashAlgorithm
from .store import CertRecord, PreSigned, Store

log = logging.getLogger("revocd.presign")


async def presign_issuer(store: Store, issuer: IssuerRuntime, concurrency: int = 32) -> int:
    """Sign and store a SHA-1-CertID answer for every record; return how many were stored."""
    now = int(time.time())
    this_update, next_update = issuer.schedule.window(now)
    stored = 0
    send, receive = trio.open_memory_channel[CertRecord](concurrency * 4)

    async def worker() -> None:
        nonlocal stored
        async for record in receive:
            cert_id = issuer.hashes.cert_id(HashAlgorithm.SHA1, record.serial)
            single = single_for_record(cert_id, record, this_update, next_update)
            der = await issuer.identity.sign([single], now)
            answer = PreSigned(this_update, next_update, der)
            if await store.put_answer(issuer.name, record, answer):
                stored += 1

    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
        async with send:
            async for record in store.records(issuer.name):
                await send.send(record)
    log.info(
        "pre-signed %d answers for %s in %.2f s", stored, issuer.name, time.monotonic() - started
    )
    return stored
