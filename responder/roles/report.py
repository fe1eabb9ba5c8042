"""`revocd report`: collects what propagation/report.py renders, from the store (the
ledger, CRL publications, records), the audit log (verified) and the configuration."""

import hashlib
import logging
import sys
import time
from pathlib import Path

import trio

from ..audit.log import verify
from ..config import Config, ConfigError, load_config
from ..ingest import EventError, parse_serial
from ..propagation.ledger import timeline
from ..propagation.report import Incident, ReportInput, build, to_csv, to_html
from ..store import Store
from .wiring import configured_store

log = logging.getLogger("revocd.service")


def audit_files(path: Path) -> list[Path]:
    """The audit log and its rotated files (audit.log.<first>-<last>), oldest first."""

    def first_seq(p: Path) -> int:
        try:
            return int(p.name.rsplit(".", 1)[1].split("-")[0])
        except (IndexError, ValueError):
            return -1

    rotated = sorted(path.parent.glob(path.name + ".*-*"), key=first_seq)
    return [*rotated, *([path] if path.exists() else [])]


def digests(config: Config) -> dict[str, str]:
    out: dict[str, str] = {}
    files: list[tuple[str, Path | None]] = [("config", config.source)]
    for name, issuer in config.issuers.items():
        files.append((f"issuers.{name}.certificate", issuer.certificate))
        files.append((f"issuers.{name}.responder_certificate", issuer.responder_certificate))
    for what, path in files:
        if path is not None and path.exists():
            out[what] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def read_incident(path: Path, default_issuer: str | None, config: Config) -> Incident:
    """Lines of `serial` (hex) or `issuer:serial`; # starts a comment."""
    serials: dict[str, list[int]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        issuer, _, serial_text = text.rpartition(" ") if " " in text else ("", "", text)
        if not issuer and ":" in text and text.split(":", 1)[0] in config.issuers:
            issuer, serial_text = text.split(":", 1)
        issuer = issuer.strip() or (default_issuer or "")
        if issuer not in config.issuers:
            raise ConfigError(
                f"--serials {path}:{number}: unknown issuer {issuer!r} (give --issuer)"
            )
        try:
            serials.setdefault(issuer, []).append(parse_serial(serial_text.strip()))
        except EventError as exc:
            raise ConfigError(f"--serials {path}:{number}: {exc}") from None
    return Incident(path.name, serials)


async def collect(
    store: Store, config: Config, since: float, until: float, incident: Incident | None
) -> ReportInput:
    now = time.time()
    timelines = []
    publications: dict[str, list[dict[str, str]]] = {}
    for name in config.issuers:
        for p in range(store.partitions(name)):
            found = await store.ledger_range(name, p, int(since * 1000), int(until * 1000))
            ledgers = await store.ledger_many(name, p, [s for s, _ in found])
            for serial, fields in ledgers.items():
                timelines.append(
                    timeline(name, serial, fields, config.propagation, int(now * 1000))
                )
        publications[name] = await store.crl_publications(
            name, int(since * 1000), int(until * 1000)
        )
    if incident is not None:
        for issuer, serials in incident.serials.items():
            records = await store.get_records(issuer, serials)
            for serial in serials:
                incident.records[(issuer, serial)] = records.get(serial)
                fields = await store.ledger_get(issuer, serial)
                if "ack" in fields:
                    incident.acked[(issuer, serial)] = int(fields["ack"])
    files = audit_files(config.audit_file)
    result = await trio.to_thread.run_sync(verify, files) if files else None
    audit: dict[str, object] = {"files": [str(f) for f in files]}
    if result is None:
        audit.update(ok=False, errors=["no audit log found"])
    else:
        audit.update(
            ok=result.ok,
            records=result.records,
            head_seq=result.head_seq,
            head_hash=result.head_hash,
            errors=[f"{f.file}:{f.line}: {f.problem}" for f in result.errors],
        )
    return ReportInput(now, since, until, timelines, publications, audit, digests(config), incident)


def report_command(
    config_path: str | Path,
    since: float,
    until: float,
    fmt: str,
    out: str | None,
    serials: str | None = None,
    issuer: str | None = None,
) -> int:
    import json

    config = load_config(config_path)
    incident = read_incident(Path(serials), issuer, config) if serials else None
    holder: list[ReportInput] = []

    async def main() -> None:
        async with configured_store(config) as store:
            holder.append(await collect(store, config, since, until, incident))

    trio.run(main)
    data = holder[0]
    if fmt == "json":
        text = json.dumps(build(data), indent=1) + "\n"
    elif fmt == "csv":
        text = to_csv(data)
    else:
        text = to_html(data)
    if out and out != "-":
        Path(out).write_text(text)
        log.info("report written to %s (%d revocations)", out, len(data.timelines))
    else:
        sys.stdout.write(text)
    audit_ok = bool(data.audit.get("ok"))
    return 0 if audit_ok else 1
