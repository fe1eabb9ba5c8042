"""How records and events are spelled in the store: one compact string per serial in
the partition hash, and the argument group the apply script takes per event.

    good:    g|not_after|version|updated_at|crl_shard
    revoked: r|not_after|version|updated_at|crl_shard|revoked_at|reason|invalidity_date

Times are Unix seconds; an empty not_after means the certificate was revoked before
revocd heard of its issuance; an empty invalidity_date means none. The record itself,
and the rules that change it, are in responder/domain/.
"""

from ..domain.events import Event
from ..domain.records import CertRecord, Status
from ..ocsp.types import RevocationReason
from .keys import serial_field


def decode_record(serial: int, raw: bytes | str) -> CertRecord:
    text = raw.decode() if isinstance(raw, bytes) else raw
    parts = text.split("|")
    not_after = int(parts[1]) if parts[1] else None
    common = (not_after, int(parts[2]), int(parts[3]), int(parts[4]))
    if parts[0] == "g":
        return CertRecord(serial, Status.GOOD, *common)
    if parts[0] == "r":
        return CertRecord(
            serial,
            Status.REVOKED,
            *common,
            revoked_at=int(parts[5]),
            reason=RevocationReason(int(parts[6])),
            invalidity_date=int(parts[7]) if parts[7] else None,
        )
    raise ValueError(f"unknown record kind {parts[0]!r}")


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def encode_record(record: CertRecord) -> str:
    """The inverse of decode_record (tests and the migration tooling write records)."""
    common = [_opt(record.not_after), str(record.version), str(record.updated_at)]
    if record.status is Status.GOOD:
        return "|".join(["g", *common, str(record.crl_shard)])
    assert record.reason is not None
    return "|".join(
        [
            "r",
            *common,
            str(record.crl_shard),
            _opt(record.revoked_at),
            str(int(record.reason)),
            _opt(record.invalidity_date),
        ]
    )


def event_args(event: Event, crl_shards: int) -> list[str]:
    """The argument group apply_events.lua expects for one event."""
    return [
        event.type.value,
        serial_field(event.serial),
        _opt(event.not_after),
        _opt(event.revoked_at),
        "" if event.reason is None else str(int(event.reason)),
        _opt(event.invalidity_date),
        str(event.serial % crl_shards),
    ]
