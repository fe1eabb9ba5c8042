"""Ingest on the in-memory store with a fixed clock: validation names the field, a
batch's events for one certificate apply in order, results come back per event, and
"in the future" is judged by the injected clock. (tests/integration/test_store.py and
test_event_validation.py run the same code on Valkey.)"""

from pathlib import Path

import trio

from responder.config import IssuerConfig
from responder.domain.records import Status
from responder.ingest import Ingestor
from responder.policy import Policy
from responder.store.memory import MemoryStore

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
ISSUERS = {"p": IssuerConfig("p", Path("p.pem"), Policy.PRIVATE, partitions=4)}


def submit(events, clock=lambda: NOW):
    async def main():
        store = MemoryStore(clock)
        await store.register_issuers(ISSUERS.values())
        results = await Ingestor(store, ISSUERS, clock=clock).submit(events)
        return store, [(r.result.value, r.message) for r in results]

    return trio.run(main)


def ev(kind: str, serial: int = 0x42, **fields) -> dict:
    return {"type": kind, "issuer": "p", "serial": format(serial, "x"), **fields}


def test_events_for_one_certificate_apply_in_batch_order():
    store, results = submit(
        [
            ev("issued", not_after="2028-01-01T00:00:00Z"),
            ev("revoked", revoked_at="2027-01-15T07:00:00Z", reason="certificateHold"),
            ev("unrevoked"),
            ev("revoked", revoked_at="2027-01-15T07:30:00Z", reason="keyCompromise"),
        ]
    )
    assert [r for r, _ in results] == ["applied"] * 4
    record = store.records[("p", 0x42)]
    assert record.status is Status.REVOKED and record.version == 4
    assert record.updated_at == int(NOW)  # stamped with the injected clock


def test_bad_events_are_rejected_naming_the_field_and_the_rest_applies():
    _, results = submit(
        [
            ev("issued"),
            ev("issued", serial=0x43, not_after="2028-01-01T00:00:00Z"),
            ev("revoked", serial=0x44, revoked_at="2027-01-15T09:00:00Z"),  # an hour ahead
            ev("unrevoked", serial=0x45),
        ]
    )
    assert results[0] == ("rejected", "not_after: required for an issued event")
    assert results[1] == ("applied", "issued")
    assert results[2][0] == "rejected" and results[2][1].startswith("revoked_at: in the future")
    assert results[3] == ("rejected", "serial: no record of this certificate")


def test_the_future_is_the_clocks():
    later = NOW + 7200  # the same revocation time is in the past on a later clock
    _, results = submit(
        [ev("revoked", serial=0x46, revoked_at="2027-01-15T09:00:00Z")], clock=lambda: later
    )
    assert results == [("applied", "revoked")]
