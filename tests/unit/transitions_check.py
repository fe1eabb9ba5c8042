"""One differential check, shared by the unit test (Lua in-process) and the integration
test (Lua in a real valkey-server): the same event batches through the store's
apply_events.lua and through responder.domain.transitions, the same records, outcomes,
messages and indexes out."""

from collections.abc import Callable, Sequence

from hypothesis import strategies as st

from responder.domain.events import Event, EventType, Outcome
from responder.domain.records import CertRecord, Status
from responder.domain.transitions import apply
from responder.ocsp.types import RevocationReason

ISSUER = "t"
CRL_SHARDS = 4
NO_EXPIRY = 253402300799
# Few serials and few distinct times, so that events collide on one certificate and
# every rule (repeats, conflicts, re-revocation, holds) is reached often.
SERIALS = [0x11, 0x12, 0x13]
NOT_AFTERS = [1_900_000_000, 1_900_086_400]
REVOKED_ATS = [1_790_000_000, 1_790_003_600, 1_790_007_200]
REASONS = [r for r in RevocationReason if r is not RevocationReason.REMOVE_FROM_CRL]

events = st.one_of(
    st.builds(
        Event,
        st.just(EventType.ISSUED),
        st.just(ISSUER),
        st.sampled_from(SERIALS),
        not_after=st.sampled_from(NOT_AFTERS),
    ),
    st.builds(
        Event,
        st.just(EventType.REVOKED),
        st.just(ISSUER),
        st.sampled_from(SERIALS),
        not_after=st.one_of(st.none(), st.sampled_from(NOT_AFTERS)),
        revoked_at=st.sampled_from(REVOKED_ATS),
        # holds and key compromise are where the rules are subtle: weigh them up
        reason=st.one_of(
            st.sampled_from([RevocationReason.CERTIFICATE_HOLD, RevocationReason.KEY_COMPROMISE]),
            st.sampled_from(REASONS),
        ),
        invalidity_date=st.one_of(st.none(), st.sampled_from(REVOKED_ATS[:2])),
    ),
    st.builds(Event, st.just(EventType.UNREVOKED), st.just(ISSUER), st.sampled_from(SERIALS)),
)
batches = st.lists(st.lists(events, min_size=1, max_size=6), min_size=1, max_size=8)


class Expected:
    """What the domain rules say a run of batches leaves behind."""

    def __init__(self, runs: Sequence[Sequence[Event]], first_now: int) -> None:
        self.records: dict[int, CertRecord] = {}
        self.outcomes: list[list[tuple[Outcome, str]]] = []
        self.due_now: set[int] = set()
        self.applied = 0
        for i, batch in enumerate(runs):
            now = first_now + i
            out = []
            for event in batch:
                t = apply(self.records.get(event.serial), event, now, event.serial % CRL_SHARDS)
                if t.record is not None:
                    self.records[event.serial] = t.record
                if t.resign:
                    self.due_now.add(event.serial)
                self.applied += t.applied
                out.append((t.outcome, t.message))
            self.outcomes.append(out)

    def revoked_index(self) -> dict[int, float]:
        return {
            s: float(r.not_after if r.not_after is not None else NO_EXPIRY)
            for s, r in self.records.items()
            if r.status is Status.REVOKED
        }


Runner = Callable[[Sequence[Event], int], list[tuple[Outcome, str]]]
