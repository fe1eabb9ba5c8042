"""CA events: validation, idempotent application, durable acknowledgement.

Three event types reach revocd from a CA or RA:

- `issued`    {issuer, serial, not_after} and, all optional, the inventory facts:
               certificate (PEM or base64 DER: serial, not_after and the facts are then
               derived from it, and it must verify with the issuer's key) or
               not_before, subject, sans, key_id, spki_sha256 given directly; owner and
               profile labels (inventory/facts.py)
- `revoked`   {issuer, serial, revoked_at, reason (default unspecified),
               invalidity_date?, not_after?}
- `unrevoked` {issuer, serial}: lifts a certificateHold where the policy allows holds

Serials are hex strings; times are RFC 3339 with a UTC offset. A batch holds up
to 10,000 events and each gets its own result: `applied`, `unchanged` (the
same event again changes nothing), `rejected` (with a message that starts with
the offending field), or `failed` (the store did not confirm durability; the
event is not acknowledged and can be sent again).
"""

import dataclasses
import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio
from cryptography import x509

from .config import IssuerConfig
from .domain.events import Event, EventType, Outcome
from .inventory.facts import FactsError, derive, given_facts, label, load_certificate
from .ocsp.der import MAX_TIME, MIN_TIME  # the times revocd can write
from .ocsp.types import RevocationReason
from .policy import ALLOWED_REASONS, allows_hold
from .store import StoreError
from .store.keys import partition_of
from .store.protocols import EventApplier

log = logging.getLogger("revocd.ingest")

MAX_BATCH = 10_000
# RFC 5280 section 4.1.2.2: at most 20 octets, as a positive DER INTEGER.
MAX_SERIAL_BITS = 159
CHUNK = 500  # events per store call
# Seconds beyond store.durability_timeout_ms that a batch may take before what is left
# of it is answered `failed` (the control plane promises an answer within the
# durability timeout plus one second; this leaves room to write the audit records).
BATCH_MARGIN = 0.5
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_FIELDS = {
    "issued": {
        "type",
        "issuer",
        "serial",
        "not_after",
        "certificate",
        "not_before",
        "subject",
        "sans",
        "key_id",
        "spki_sha256",
        "owner",
        "profile",
    },
    "revoked": {"type", "issuer", "serial", "revoked_at", "reason", "invalidity_date", "not_after"},
    "unrevoked": {"type", "issuer", "serial"},
}


# The inventory fields of an `issued` event (inventory/facts.py)
_FACT_FIELDS = frozenset(_FIELDS["issued"] - {"type", "issuer", "serial", "not_after"})


class EventError(ValueError):
    """A rejected event; str() starts with the field name."""


class BatchTooLarge(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class EventResult:
    index: int
    result: Outcome
    message: str
    issuer: str | None = None
    serial: int | None = None
    # An `issued` event whose key is on the blocked list (inventory/cascade.py): it is
    # applied (the CA did issue it) and reported as an anomaly by the caller.
    blocked_key: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "index": self.index,
            "result": self.result.value,
            "message": self.message,
        }
        if self.serial is not None:
            out["serial"] = format(self.serial, "x")
        if self.blocked_key is not None:
            out["blocked_key"] = self.blocked_key
        return out


def parse_time(value: Any, name: str) -> int:
    if not isinstance(value, str):
        raise EventError(f"{name}: expected an RFC 3339 time string")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise EventError(f"{name}: not an RFC 3339 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise EventError(f"{name}: needs a UTC offset (for example 2026-11-22T10:00:00Z)")
    seconds = int(parsed.timestamp())
    if not MIN_TIME <= seconds <= MAX_TIME:
        raise EventError(f"{name}: outside 1950..9999")
    return seconds


def parse_serial(value: Any) -> int:
    if not isinstance(value, str):
        raise EventError("serial: expected a hex string")
    text = value.replace(":", "")
    if text.lower().startswith("0x"):
        text = text[2:]
    if not _HEX.match(text):
        raise EventError(f"serial: not a hex string: {value!r}")
    serial = int(text, 16)
    if serial <= 0 or serial.bit_length() > MAX_SERIAL_BITS:
        raise EventError(
            "serial: must be a positive integer of at most 20 octets (RFC 5280 4.1.2.2)"
        )
    return serial


def parse_event(
    raw: Any,
    issuers: Mapping[str, IssuerConfig],
    now: int,
    skew: int = 300,
    certificates: Mapping[str, x509.Certificate] | None = None,
) -> Event:
    """Validate one event; raise EventError naming the field. `certificates` are the
    issuers' own, to verify an `issued` event's certificate with."""
    if not isinstance(raw, Mapping):
        raise EventError("event: expected a JSON object")
    kind = raw.get("type")
    if kind is None:
        raise EventError("type: required")
    try:
        etype = EventType(kind)
    except ValueError:
        raise EventError(f"type: must be issued, revoked or unrevoked, got {kind!r}") from None
    for key in raw:
        if key not in _FIELDS[etype]:
            raise EventError(f"{key}: unknown field for a {etype.value} event")
    issuer_name = raw.get("issuer")
    if not isinstance(issuer_name, str):
        raise EventError("issuer: required")
    issuer = issuers.get(issuer_name)
    if issuer is None:
        raise EventError(f"issuer: unknown issuer {issuer_name!r}")
    if etype is EventType.ISSUED:
        try:
            return _issued(raw, issuer_name, (certificates or {}).get(issuer_name))
        except FactsError as exc:
            raise EventError(str(exc)) from None
    if "serial" not in raw:
        raise EventError("serial: required")
    serial = parse_serial(raw["serial"])

    def not_future(seconds: int, name: str) -> int:
        if seconds > now + skew:
            raise EventError(f"{name}: in the future (more than {skew} s ahead of the clock)")
        return seconds

    if etype is EventType.UNREVOKED:
        if not allows_hold(issuer.policy):
            raise EventError(
                f"type: unrevoked lifts a certificateHold, which {issuer.policy.value} issuers "
                "do not allow"
            )
        return Event(etype, issuer_name, serial)

    if "revoked_at" not in raw:
        raise EventError("revoked_at: required for a revoked event")
    revoked_at = not_future(parse_time(raw["revoked_at"], "revoked_at"), "revoked_at")
    reason_name = raw.get("reason", "unspecified")
    if not isinstance(reason_name, str):
        raise EventError("reason: expected a reason name such as keyCompromise")
    try:
        reason = RevocationReason.from_rfc_name(reason_name)
        if reason is RevocationReason.REMOVE_FROM_CRL:
            raise ValueError(reason_name)
    except ValueError:
        names = ", ".join(
            r.rfc_name for r in RevocationReason if r is not RevocationReason.REMOVE_FROM_CRL
        )
        raise EventError(
            f"reason: unknown revocation reason {reason_name!r}; one of {names}"
        ) from None
    if reason not in ALLOWED_REASONS[issuer.policy]:
        if reason is RevocationReason.CERTIFICATE_HOLD:
            detail = "certificateHold is not allowed"
        else:
            detail = f"{reason.rfc_name} is not allowed"
        raise EventError(f"reason: {detail} for {issuer.policy.value} issuers (BR 7.2.2)")
    invalidity = None
    if raw.get("invalidity_date") is not None:
        invalidity = not_future(
            parse_time(raw["invalidity_date"], "invalidity_date"), "invalidity_date"
        )
        if invalidity > revoked_at:
            raise EventError("invalidity_date: after revoked_at")
    not_after = parse_time(raw["not_after"], "not_after") if raw.get("not_after") else None
    return Event(etype, issuer_name, serial, not_after, revoked_at, reason, invalidity)


def _issued(raw: Mapping[str, Any], issuer: str, issuer_cert: x509.Certificate | None) -> Event:
    """An `issued` event: serial and not_after given, derived from the certificate, or
    both (then they must agree), plus the inventory facts."""
    if _FACT_FIELDS.isdisjoint(raw):
        # the plain event, most of what CAs send: no facts to build (+4 µs an event)
        if "serial" not in raw:
            raise EventError("serial: required")
        serial = parse_serial(raw["serial"])
        if "not_after" not in raw:
            raise EventError("not_after: required for an issued event")
        return Event(
            EventType.ISSUED, issuer, serial, not_after=parse_time(raw["not_after"], "not_after")
        )
    given_serial = parse_serial(raw["serial"]) if "serial" in raw else None
    given_after = parse_time(raw["not_after"], "not_after") if "not_after" in raw else None
    owner = None if raw.get("owner") is None else label(raw["owner"], "owner")
    profile = None if raw.get("profile") is None else label(raw["profile"], "profile")
    if "certificate" in raw:
        for name in ("not_before", "subject", "sans", "key_id", "spki_sha256"):
            if name in raw:
                raise EventError(f"{name}: derived from the certificate; do not give both")
        if issuer_cert is None:
            raise EventError(f"certificate: issuer {issuer!r}'s certificate is not loaded")
        derived = derive(load_certificate(raw["certificate"]), issuer_cert)
        if given_serial is not None and given_serial != derived.serial:
            raise EventError(
                f"serial: {format(given_serial, 'x')} but the certificate's is "
                f"{format(derived.serial, 'x')}"
            )
        if given_after is not None and given_after != derived.not_after:
            raise EventError("not_after: differs from the certificate's notAfter")
        if derived.serial <= 0 or derived.serial.bit_length() > MAX_SERIAL_BITS:
            raise EventError(
                "serial: the certificate's serial is not a positive integer of at most 20 "
                "octets (RFC 5280 4.1.2.2)"
            )
        facts = dataclasses.replace(derived.facts, owner=owner, profile=profile)
        return Event(
            EventType.ISSUED, issuer, derived.serial, not_after=derived.not_after, facts=facts
        )
    if given_serial is None:
        raise EventError("serial: required")
    if given_after is None:
        raise EventError("not_after: required for an issued event")
    not_before = parse_time(raw["not_before"], "not_before") if "not_before" in raw else None
    if not_before is not None and not_before > given_after:
        raise EventError("not_before: after not_after")
    facts = given_facts(raw, not_before)
    return Event(
        EventType.ISSUED,
        issuer,
        given_serial,
        not_after=given_after,
        facts=facts if facts.to_json() else None,
    )


class Ingestor:
    """Applies event batches to the store and reports a result per event."""

    def __init__(
        self,
        store: EventApplier,
        issuers: Mapping[str, IssuerConfig],
        clock_skew: int = 300,
        concurrency: int = 32,
        clock: Callable[[], float] = time.time,
        certificates: Mapping[str, x509.Certificate] | None = None,
    ) -> None:
        self.store = store
        # The issuers' certificates, to verify the certificate an `issued` event carries
        self.certificates = dict(certificates or {})
        self.issuers = issuers
        self.clock_skew = clock_skew
        # Wall-clock time for "in the future" checks and record stamps, injected so
        # unit tests can fix it.
        self.clock = clock
        self._limiter = trio.CapacityLimiter(concurrency)

    async def submit(
        self, raw_events: Sequence[Any], allowed_issuers: set[str] | None = None
    ) -> list[EventResult]:
        """Validate and apply a batch of JSON events. `allowed_issuers` scopes the caller."""
        if len(raw_events) > MAX_BATCH:
            raise BatchTooLarge(f"events: at most {MAX_BATCH} per batch, got {len(raw_events)}")
        now = int(self.clock())
        if any(isinstance(raw, Mapping) and "certificate" in raw for raw in raw_events):
            # A certificate costs a signature check (~0.1-0.3 ms, docs/benchmarks.md): a
            # batch of them is validated in a worker thread, so the event loop that also
            # answers the control plane and runs the pre-signer is not held for seconds.
            results, valid = await trio.to_thread.run_sync(
                self._validate, raw_events, allowed_issuers, now
            )
        else:
            results, valid = self._validate(raw_events, allowed_issuers, now)
        for result in await self.apply(valid):
            results[result.index] = result
        await self._mark_blocked(valid, results)
        done = [r for r in results if r is not None]
        counts = {code: sum(1 for r in done if r.result == code) for code in Outcome}
        log.info("event batch of %d: %s", len(raw_events), counts)
        return done

    def _validate(
        self, raw_events: Sequence[Any], allowed_issuers: set[str] | None, now: int
    ) -> tuple[list[EventResult | None], list[tuple[int, Event]]]:
        results: list[EventResult | None] = [None] * len(raw_events)
        valid: list[tuple[int, Event]] = []
        for i, raw in enumerate(raw_events):
            try:
                event = parse_event(raw, self.issuers, now, self.clock_skew, self.certificates)
            except EventError as exc:
                results[i] = EventResult(i, Outcome.REJECTED, str(exc))
                continue
            if allowed_issuers is not None and event.issuer not in allowed_issuers:
                results[i] = EventResult(
                    i,
                    Outcome.REJECTED,
                    f"issuer: this token may not push events for {event.issuer!r}",
                    event.issuer,
                    event.serial,
                )
                continue
            valid.append((i, event))
        return results, valid

    async def _mark_blocked(
        self, valid: Sequence[tuple[int, Event]], results: list[EventResult | None]
    ) -> None:
        """Name the blocked key of each stored `issued` event that has one. A failed read
        of the list costs the report, never the acknowledgement (logged)."""
        keyed = {
            i: e.facts.spki_sha256
            for i, e in valid
            if e.type is EventType.ISSUED and e.facts is not None and e.facts.spki_sha256
        }
        if not keyed:
            return
        try:
            blocked = await self.store.blocked_keys(sorted(set(keyed.values())))
        except StoreError as exc:
            log.error("blocked keys not checked for %d issued events: %s", len(keyed), exc)
            return
        for index, spki in keyed.items():
            result = results[index]
            if spki in blocked and result is not None and result.result != Outcome.REJECTED:
                results[index] = dataclasses.replace(result, blocked_key=spki)

    async def apply(self, events: Sequence[tuple[int, Event]]) -> list[EventResult]:
        """Apply validated events; order is kept per certificate."""
        groups: dict[tuple[str, int], list[tuple[int, Event]]] = {}
        for index, event in events:
            n = self.store.partitions(event.issuer)
            groups.setdefault((event.issuer, partition_of(event.serial, n)), []).append(
                (index, event)
            )
        results: list[EventResult] = []
        # The whole batch is answered within the durability timeout plus a margin: a
        # frozen or failing store makes its events `failed` (not acknowledged; the CA
        # retries, and a retry of what did land is `unchanged`), never a hung request.
        budget = self.store.durability_timeout + BATCH_MARGIN
        now = int(self.clock())  # the records' updated_at
        deadline = trio.current_time() + budget

        async def run(issuer: str, partition: int, group: list[tuple[int, Event]]) -> None:
            # Chunks of one partition go in order, so events for one serial apply in order.
            crl_shards = self.issuers[issuer].crl_shards
            for start in range(0, len(group), CHUNK):
                chunk = group[start : start + CHUNK]
                outcome: list[tuple[Outcome, str]] | None = None
                with trio.move_on_at(deadline):
                    async with self._limiter:
                        try:
                            outcome = await self.store.apply_events(
                                issuer, partition, [e for _, e in chunk], crl_shards, now
                            )
                            # Facts after the status: an event is acknowledged only when
                            # both are stored; a crash between them leaves it unacknowledged,
                            # and the CA's retry ("unchanged") stores the facts then.
                            kept = [
                                e
                                for (_, e), (code, _) in zip(chunk, outcome, strict=True)
                                if e.facts is not None and code != Outcome.REJECTED
                            ]
                            if kept:
                                await self.store.put_inventory(issuer, partition, kept)
                        except StoreError as exc:
                            log.error(
                                "events for %s partition %d not acknowledged: %s",
                                issuer,
                                partition,
                                exc,
                            )
                            outcome = [(Outcome.FAILED, f"store: {exc}")] * len(chunk)
                if outcome is None:
                    log.error(
                        "events for %s partition %d not acknowledged: no answer from the "
                        "store within %.1f s",
                        issuer,
                        partition,
                        budget,
                    )
                    outcome = [
                        (
                            Outcome.FAILED,
                            f"store: no answer within {budget:.1f} s; not acknowledged",
                        )
                    ] * len(chunk)
                for (index, event), (code, message) in zip(chunk, outcome, strict=True):
                    results.append(EventResult(index, code, message, issuer, event.serial))

        async with trio.open_nursery() as nursery:
            for (issuer, partition), group in groups.items():
                nursery.start_soon(run, issuer, partition, group)
        return results
