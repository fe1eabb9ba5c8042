"""Load shedding for live signing: how late the event loop runs, and who waits."""

import random

import trio

from ..observability import metrics


class LoopLag:
    """How late the event loop runs: the time a newly readable connection waits for its
    turn. A monitor task sleeps `TICK` and measures how much later it woke; the figure
    rises at once and decays by half each tick, so one slow pass is seen and a
    recovered loop is trusted again within a few ticks.

    Live signing is refused (tryLater) while the lag is over `limit`: a signature
    costs several times a refusal, so shedding signatures is what brings every other
    request's wait, cached GETs included, back under the limit."""

    TICK = 0.005
    # A lookup that took longer than this awaited something (an HSM, the store): its
    # time was not spent on this loop, so it is not charged (max_pending bounds those).
    INLINE = 0.005
    # Held connections released per calm tick (see `hold`).
    RELEASE = 16
    # Live signing may take this share of the loop before lag counts as its fault.
    LIVE_SHARE = 0.25
    # Fewer live requests than this per pass are always signed: they can delay the
    # others by at most FLOOR signatures (a few ms), and refusing a handful of clients
    # (16 OCSP checkers during a mass revocation) would not make anything faster.
    FLOOR = 32

    def __init__(self, limit: float = float("inf")) -> None:
        self.limit = limit
        self.lag = 0.0
        self._held = trio.lowlevel.ParkingLot()
        # Signing time charged since the monitor last woke. Every request of one pass
        # sees the same `lag`, so without this the pass after a calm one would admit
        # every signature in it and overshoot the limit many times over.
        self.spent = 0.0
        # Share of the loop's time spent signing live, averaged over a few ticks.
        self.share = 0.0
        # Live requests since the last tick, and the recent peak (halved each tick).
        self.arrivals = 0
        self.recent = 0.0

    @property
    def overloaded(self) -> bool:
        """Late, and live signing is what makes it late. A loop slowed by other work (a
        pre-sign sweep re-signing after a mass revocation, a CRL build) still signs the
        few live answers asked meanwhile: refusing them would not make it faster."""
        if max(self.arrivals, self.recent) < self.FLOOR:
            return False  # too few live requests to make anyone wait long: sign them
        if self.lag + self.spent <= self.limit:
            return False
        return self.share > self.LIVE_SHARE or self.spent > self.limit

    def arrive(self) -> None:
        self.arrivals += 1

    def charge(self, seconds: float) -> None:
        if seconds < self.INLINE:
            self.spent += seconds

    async def hold(self, pause: float) -> None:
        """Keep a connection that was told tryLater from sending its next request for
        up to `pause` (jittered), releasing it early once the loop is calm again.

        The held connections wait in one parking lot that the monitor opens RELEASE
        at a time per calm tick: a passing spike costs them one tick, while under a
        flood they come back no faster than the loop can take them (woken all at
        once, a thousand connections would be the next spike)."""
        with trio.move_on_after(pause * (0.5 + random.random())):
            await self._held.park()

    async def run(self) -> None:
        clock = trio.current_time
        while True:
            started = clock()
            await trio.sleep(self.TICK)
            elapsed = clock() - started
            late = elapsed - self.TICK
            self.lag = max(late, self.lag * 0.5)
            self.share = 0.8 * self.share + 0.2 * min(1.0, self.spent / elapsed)
            self.spent = 0.0
            self.recent = max(float(self.arrivals), self.recent * 0.5)
            self.arrivals = 0
            if not self.overloaded and self._held:
                self._held.unpark(count=self.RELEASE)
            metrics.LOOP_LAG.observe(late)
