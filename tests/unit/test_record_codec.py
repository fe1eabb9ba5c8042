"""Records and events as the store spells them (responder/store/records.py)."""

from hypothesis import given
from hypothesis import strategies as st

from responder.domain.records import CertRecord, Status
from responder.ocsp.types import RevocationReason
from responder.store.records import decode_record, encode_record

times = st.integers(-631152000, 253402300799)


def records(status: Status, *revocation: st.SearchStrategy) -> st.SearchStrategy:
    serial, version, shard = st.integers(1, 2**159), st.integers(1, 2**40), st.integers(0, 4095)
    not_after = st.one_of(st.none(), times)
    return st.builds(
        CertRecord, serial, st.just(status), not_after, version, times, shard, *revocation
    )


good = records(Status.GOOD)
revoked = records(
    Status.REVOKED, times, st.sampled_from(list(RevocationReason)), st.one_of(st.none(), times)
)


@given(st.one_of(good, revoked))
def test_records_survive_the_round_trip(record):
    assert decode_record(record.serial, encode_record(record)) == record


def test_the_stored_spelling_is_stable():
    raw = "r|1900000000|3|1800000000|2|1790000000|1|"
    record = decode_record(0x11, raw)
    assert record.reason is RevocationReason.KEY_COMPROMISE and record.invalidity_date is None
    assert encode_record(record) == raw
