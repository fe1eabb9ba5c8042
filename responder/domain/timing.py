"""When an answer is valid, when it must be re-signed, how long caches may keep it.

BR 4.9.10 (and Microsoft's program): validity (nextUpdate - thisUpdate) between
8 hours and 10 days (7 for Microsoft); with validity under 16 hours re-sign at
half-life, otherwise at least 8 hours before nextUpdate and at most 4 days after
thisUpdate. thisUpdate is backdated by minutes, never hours, never in the future.
"""

import hashlib
from dataclasses import dataclass

HOUR = 3600
DAY = 24 * HOUR
MIN_VALIDITY = 8 * HOUR
MAX_VALIDITY = 10 * DAY
MAX_BACKDATE = 60 * 60 - 1
JITTER_FRACTION = 10  # re-sign up to validity / 10 before the planned time


@dataclass(frozen=True, slots=True)
class Schedule:
    validity: int = 4 * DAY
    backdate: int = 5 * 60

    def __post_init__(self) -> None:
        # BR counts validity inclusively: nextUpdate - thisUpdate + 1 second.
        if not MIN_VALIDITY <= self.validity + 1 <= MAX_VALIDITY:
            raise ValueError("validity must be between 8 hours and 10 days (BR 4.9.10)")
        if not 0 <= self.backdate <= MAX_BACKDATE:
            raise ValueError("backdate must be under an hour")

    def window(self, now: int) -> tuple[int, int]:
        """(thisUpdate, nextUpdate) for an answer signed at `now`."""
        this_update = now - self.backdate
        return this_update, this_update + self.validity

    def refresh_at(self, this_update: int, next_update: int) -> int:
        """When the answer must be replaced by a fresh one."""
        validity = next_update - this_update
        if validity < 16 * HOUR:
            return this_update + validity // 2
        return min(this_update + 4 * DAY, next_update - 8 * HOUR)

    def max_age(self, this_update: int, next_update: int, now: int) -> int:
        """Cache-Control max-age: caches drop the answer before the planned re-sign."""
        return max(0, self.refresh_at(this_update, next_update) - now)


def due_at(schedule: Schedule, serial: int, this_update: int, next_update: int) -> int:
    """When the pre-signer replaces an answer: its re-sign time, pulled earlier by a
    jitter derived from the serial (up to a tenth of the validity), so that
    certificates issued in one burst are not all re-signed in one burst."""
    refresh = schedule.refresh_at(this_update, next_update)
    window = max(1, (next_update - this_update) // JITTER_FRACTION)
    jitter = int.from_bytes(hashlib.sha256(serial.to_bytes(21, "big")).digest()[:4], "big")
    return refresh - jitter % window
