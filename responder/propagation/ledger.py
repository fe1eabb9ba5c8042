"""The propagation ledger: for every revocation, when each serving point had it.

One hash per revocation in the store, next to the certificate's record
(`rv:{issuer:p}:lg:<serial>`), started by the apply script atomically with the
revocation (so every acknowledged revocation has one), with a sorted index by
acknowledgement time for the report. Steps are recorded first time only:

| step | recorded by | when |
|---|---|---|
| `ack` | the apply script | the revocation was durable and acknowledged |
| `signed` | the pre-signer | its `revoked` answer was stored |
| `served` | a data plane | it first served `revoked` for the serial |
| `purge:<target>:req` / `:ack` | the purger | the CDN target was asked / said yes |
| `crl:<origin>`, `crl_number` | the CRL generator | the first CRL listing it was published |
| `probed` | the prober | it saw `revoked` through the public OCSP URL |

Each value is Unix milliseconds (`crl_number`: the CRL number). Everything else here
is pure: a ledger's fields in, a timeline with each step's delay and deadline out.
"""

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ..config.model import PropagationConfig
from ..domain.records import CertRecord
from ..observability import metrics
from ..store import Store
from ..store.errors import StoreError

log = logging.getLogger("revocd.propagation")

# BR 4.9.10 (OCSP) and 4.9.7 (CRL): updated within 24 hours of the revocation
BR_UPDATE_DEADLINE = 24 * 3600


# The steps that are times (crl_number is not)
TIMED = frozenset({"signed", "served", "purge", "crl", "probed"})


def step_kind(step: str) -> str:
    """The metric label of a step: purge:<target>:ack -> purge (the CDN took it),
    purge:<target>:req -> purge_requested (not timed), crl:<origin> -> crl."""
    if step.startswith("purge:"):
        return "purge_requested" if step.endswith(":req") else "purge"
    if step.startswith("crl:"):
        return "crl"
    return step


def target_of(step: str, config: PropagationConfig) -> int | None:
    return {
        "signed": config.signed_target_seconds,
        "served": config.served_target_seconds,
        "purge": config.purged_target_seconds,
        "crl": config.crl_target_seconds,
        "probed": config.probed_target_seconds,
    }.get(step_kind(step))


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    at_ms: int
    seconds: float  # after the acknowledgement
    target: int | None  # [propagation] target, seconds
    met: bool | None  # None: no target for this step


@dataclass(frozen=True, slots=True)
class Timeline:
    issuer: str
    serial: int
    ack_ms: int
    revoked_at: int | None
    reason: str | None
    crl_number: int | None
    steps: tuple[Step, ...]
    # BR deadlines: an OCSP answer saying revoked (served, else signed) and a CRL
    # listing it, within 24 h; None: not reached yet
    ocsp_within_24h: bool | None
    crl_within_24h: bool | None

    def to_json(self) -> dict[str, object]:
        return {
            "issuer": self.issuer,
            "serial": format(self.serial, "x"),
            "acknowledged_at_ms": self.ack_ms,
            "revoked_at": self.revoked_at,
            "reason": self.reason,
            "crl_number": self.crl_number,
            "steps": [
                {
                    "step": s.name,
                    "at_ms": s.at_ms,
                    "seconds": round(s.seconds, 3),
                    "target_seconds": s.target,
                    "met": s.met,
                }
                for s in self.steps
            ],
            "br_ocsp_within_24h": self.ocsp_within_24h,
            "br_crl_within_24h": self.crl_within_24h,
        }


def timeline(
    issuer: str,
    serial: int,
    fields: dict[str, str],
    config: PropagationConfig,
    now_ms: int,
) -> Timeline:
    """A ledger's fields as a timeline, steps in time order."""
    ack = int(fields.get("ack", "0"))
    steps = []
    for name, value in fields.items():
        if name in ("ack", "ver", "revoked_at", "reason", "crl_number"):
            continue
        try:
            at = int(value)
        except ValueError:
            continue
        seconds = max(0.0, (at - ack) / 1000)
        target = target_of(name, config)
        steps.append(Step(name, at, seconds, target, None if target is None else seconds <= target))
    steps.sort(key=lambda s: (s.at_ms, s.name))

    def br(found: list[Step]) -> bool | None:
        if found:
            return min(s.seconds for s in found) <= BR_UPDATE_DEADLINE
        # not reached: late once 24 hours have passed, undecided before
        return False if (now_ms - ack) / 1000 > BR_UPDATE_DEADLINE else None

    ocsp = [s for s in steps if s.name in ("served", "signed")]
    crl = [s for s in steps if step_kind(s.name) == "crl"]
    revoked_at = fields.get("revoked_at")
    number = fields.get("crl_number")
    return Timeline(
        issuer,
        serial,
        ack,
        int(revoked_at) if revoked_at else None,
        fields.get("reason") or None,
        int(number) if number else None,
        tuple(steps),
        br(ocsp),
        br(crl),
    )


class Ledger:
    """Records steps: `mark` from background work (awaited), `note` from the data
    plane (never blocks: queued, written by `run` in batches; dropped and counted when
    the writer is behind, which changes nothing that is served)."""

    FLUSH = 0.2  # seconds between writes of noted steps
    SEEN = 200_000  # (issuer, serial, step) noted already, per process
    PENDING = 500_000  # notes waiting per issuer and step (about 100 bytes each)

    def __init__(
        self,
        store: Store,
        config: PropagationConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self._pending: dict[tuple[str, str], dict[int, int]] = {}
        self._seen: OrderedDict[tuple[str, int, str], None] = OrderedDict()
        self._wake = trio.Event()

    async def mark(self, issuer: str, step: str, values: dict[int, int]) -> None:
        """Record `step` for the serials in `values` (Unix ms each); the first time
        only. Measured into revocd_propagation_seconds against its target."""
        if not values:
            return
        try:
            recorded = await self.store.ledger_mark(issuer, step, values)
        except StoreError as exc:
            metrics.LEDGER_DROPPED.inc(len(values))
            log.warning(
                "ledger: %s for %d serial(s) of %s not recorded: %s", step, len(values), issuer, exc
            )
            return
        kind = step_kind(step)
        if kind not in TIMED:
            return
        target = target_of(step, self.config)
        late: list[tuple[float, int]] = []
        for serial, ack in recorded.items():
            seconds = max(0, values[serial] - ack) / 1000
            metrics.PROPAGATION_STEPS.labels(kind).observe(seconds)
            if target is not None and seconds > target:
                late.append((seconds, serial))
        if late:
            # one line per batch, not per serial: a mass revocation is 100,000 of them
            metrics.PROPAGATION_LATE.labels(kind).inc(len(late))
            worst, serial = max(late)
            log.warning(
                "propagation: %s of %d %s revocation(s) over its target (%d s); slowest "
                "serial %x, %.1f s",
                step,
                len(late),
                issuer,
                target,
                serial,
                worst,
            )

    def note(self, issuer: str, serial: int, step: str = "served") -> None:
        key = (issuer, serial, step)
        if key in self._seen:
            return
        self._seen[key] = None
        if len(self._seen) > self.SEEN:
            self._seen.popitem(last=False)
        pending = self._pending.setdefault((issuer, step), {})
        if len(pending) >= self.PENDING:
            metrics.LEDGER_DROPPED.inc()
            return
        pending[serial] = int(self.clock() * 1000)
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                await trio.sleep(self.FLUSH)
                await self.flush()
        finally:
            # what was noted before a clean stop is written (bounded: a store that is
            # gone costs at most this long)
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for (issuer, step), values in pending.items():
            await self.mark(issuer, step, values)

    async def signed(self, issuer: str, records: list[CertRecord]) -> None:
        """The pre-signer's hook: revoked answers of `records` were just stored. Noted,
        not written here: the pre-signer must not wait for the ledger (during a mass
        revocation that wait would overflow its queue of changes)."""
        for r in records:
            self.note(issuer, r.serial, "signed")


async def read_timeline(
    store: Store, issuer: str, serial: int, config: PropagationConfig, now_ms: int
) -> Timeline | None:
    fields = await store.ledger_get(issuer, serial)
    if not fields:
        return None
    return timeline(issuer, serial, fields, config, now_ms)
