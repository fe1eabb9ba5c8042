"""Answer validity and re-sign times (BR 4.9.10), responder/domain/timing.py."""

import pytest

from responder.domain.timing import DAY, HOUR, Schedule, due_at


def test_validity_outside_the_br_window_is_refused():
    with pytest.raises(ValueError, match="between 8 hours and 10 days"):
        Schedule(validity=8 * HOUR - 2)
    with pytest.raises(ValueError, match="between 8 hours and 10 days"):
        Schedule(validity=10 * DAY)
    with pytest.raises(ValueError, match="under an hour"):
        Schedule(backdate=HOUR)


def test_short_answers_are_re_signed_at_half_life():
    s = Schedule(validity=12 * HOUR)
    tu, nu = s.window(1_000_000)
    assert tu == 1_000_000 - s.backdate and nu - tu == 12 * HOUR
    assert s.refresh_at(tu, nu) == tu + 6 * HOUR


def test_long_answers_are_re_signed_8_hours_before_next_update_and_within_4_days():
    s = Schedule(validity=4 * DAY - 1)
    tu, nu = s.window(0)
    assert s.refresh_at(tu, nu) == nu - 8 * HOUR
    s = Schedule(validity=10 * DAY - 1)
    tu, nu = s.window(0)
    assert s.refresh_at(tu, nu) == tu + 4 * DAY


def test_caches_drop_the_answer_before_the_planned_re_sign():
    s = Schedule(validity=4 * DAY - 1)
    tu, nu = s.window(0)
    assert s.max_age(tu, nu, now=0) == s.refresh_at(tu, nu)
    assert s.max_age(tu, nu, now=nu) == 0


def test_due_at_is_spread_within_a_tenth_of_the_validity_before_the_re_sign():
    s = Schedule(validity=4 * DAY - 1)
    tu, nu = s.window(0)
    times = [due_at(s, serial, tu, nu) for serial in range(1, 3000)]
    assert len(set(times)) > 2500
    assert all(s.refresh_at(tu, nu) - (nu - tu) // 10 <= t <= s.refresh_at(tu, nu) for t in times)
    assert due_at(s, 42, tu, nu) == due_at(s, 42, tu, nu)  # per serial, not random
