"""The differential check of tests/unit/test_transitions_lua.py on a real valkey-server,
through Store.apply_events: what proves the in-process Lua host agrees with Valkey."""

import itertools
from dataclasses import replace
from pathlib import Path

import trio
from hypothesis import given, settings

from responder.config import IssuerConfig
from responder.policy import Policy
from responder.store import Store, keys

from ..unit.transitions_check import CRL_SHARDS, ISSUER, SERIALS, Expected, batches

FIRST_NOW = 1_800_000_000
_names = itertools.count()


@settings(max_examples=40, deadline=None)
@given(batches)
def test_valkey_and_domain_agree(valkey_standalone, runs):
    name = f"{ISSUER}{next(_names)}x{id(runs) % 10**6}"
    config = IssuerConfig(name, Path("t.pem"), Policy.PRIVATE, partitions=1, crl_shards=CRL_SHARDS)
    renamed = [[replace(e, issuer=name) for e in batch] for batch in runs]

    async def main():
        async with Store.open(valkey_standalone.url) as store:
            await store.register_issuers([config])
            got = [
                await store.apply_events(name, 0, batch, CRL_SHARDS, now=FIRST_NOW + i)
                for i, batch in enumerate(renamed)
            ]
            records = await store.get_records(name, SERIALS)
            c = store.client
            revoked = await c.zrange(keys.revoked(name, 0), 0, -1, withscores=True)
            due = await c.zrange(keys.due(name, 0), 0, -1, withscores=True)
            feed = await c.xlen(keys.feed(name, 0))
            return got, records, revoked, due, feed

    got, records, revoked, due, feed = trio.run(main)
    want = Expected(renamed, FIRST_NOW)
    assert got == want.outcomes
    assert records == want.records
    assert {int(m, 16): float(score) for m, score in revoked} == want.revoked_index()
    assert {int(m, 16) for m, score in due if float(score) == 0} == want.due_now
    assert feed == want.applied
