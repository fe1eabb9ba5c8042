"""The store's Lua (apply_events.lua) and the domain rules agree on random event
sequences: the same records, outcomes, messages, revoked index, due index and feed.
The Lua runs in-process here (tests/lua_host.py); tests/integration/test_transitions_valkey.py runs
the same check on a real valkey-server."""

from hypothesis import given, settings

from responder.store import keys
from responder.store.records import decode_record, event_args
from responder.store.scripts import APPLY_EVENTS

from ..lua_host import LuaHost
from .transitions_check import CRL_SHARDS, ISSUER, Expected, batches

FIRST_NOW = 1_800_000_000


@settings(max_examples=400, deadline=None)
@given(batches)
def test_lua_and_domain_agree(runs):
    host = LuaHost()
    got = []
    for i, batch in enumerate(runs):
        args: list[str | int] = [ISSUER, FIRST_NOW + i, 1000, len(batch)]
        for event in batch:
            args.extend(event_args(event, CRL_SHARDS))
        answer_keys = [keys.answer(ISSUER, 0, e.serial) for e in batch]
        flat = host.run(APPLY_EVENTS, [*keys.partition_keys(ISSUER, 0), *answer_keys], args)
        got.append(list(zip(flat[0::2], flat[1::2], strict=True)))
    want = Expected(runs, FIRST_NOW)

    assert got == [[(o.value, m) for o, m in batch] for batch in want.outcomes]
    certs = host.hashes.get(keys.certs(ISSUER, 0), {})
    assert {int(f, 16): decode_record(int(f, 16), raw) for f, raw in certs.items()} == want.records
    revoked = host.zsets.get(keys.revoked(ISSUER, 0), {})
    assert {int(m, 16): score for m, score in revoked.items()} == want.revoked_index()
    due = host.zsets.get(keys.due(ISSUER, 0), {})
    assert {int(m, 16) for m, score in due.items() if score == 0} == want.due_now
    assert len(host.streams.get(keys.feed(ISSUER, 0), [])) == want.applied
