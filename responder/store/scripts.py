"""The Lua run inside the store (responder/store/lua/), so that each change is atomic
within its partition's slot. Kept as .lua files so that they read as Lua, and so that
tests can run the very same text in a Lua interpreter next to the domain rules."""

from importlib.resources import files


def _load(name: str) -> str:
    return (files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


APPLY_EVENTS = _load("apply_events")  # the status rules (responder/domain/transitions.py)
PUT_ANSWERS = _load("put_answers")
LOOKUP = _load("lookup")
MIGRATE_CHUNK = _load("migrate_chunk")
TAKE_LEASE = _load("take_lease")
DROP_LEASE = _load("drop_lease")
HEARTBEAT = _load("heartbeat")
FENCE_CRL_NUMBER = _load("fence_crl_number")
LEDGER_MARK = _load("ledger_mark")  # propagation/ledger.py
PUT_INVENTORY = _load("put_inventory")  # inventory/facts.py
