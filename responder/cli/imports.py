"""`revocd import`: apply an existing CA's history as events (responder/importers.py)."""

import argparse
import hashlib
import sys
from pathlib import Path


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    imp = sub.add_parser(
        "import",
        help="import an OpenSSL index.txt, a CRL or a directory of certificates",
        description="Apply an existing CA's history as events; importing twice changes nothing.",
    )
    imp.add_argument("-c", "--config", required=True, help="revocd.toml")
    imp.add_argument("--issuer", required=True, help="issuer name from the config")
    imp.add_argument("kind", choices=["index", "crl", "certs"], help="what PATH holds")
    imp.add_argument("path", help="index.txt, CRL file (DER or PEM), or certificate directory")
    imp.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: building the parser must stay light.
    import trio

    from ..audit.trail import open_audit_log, record_command
    from ..config import ConfigError, load_config
    from ..importers import (
        ImportError_,
        ImportReport,
        certificate_events,
        crl_events,
        index_events,
        run_import,
    )
    from ..ingest import Ingestor
    from ..roles.wiring import configured_store
    from ..store import StoreError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"revocd import: {exc}", file=sys.stderr)
        return 2
    issuer = config.issuers.get(args.issuer)
    if issuer is None:
        print(f"revocd import: --issuer: {args.issuer!r} is not in {args.config}", file=sys.stderr)
        return 2
    cert = config.certificates[issuer.name]
    path = Path(args.path)
    report = ImportReport(str(path))

    async def main() -> None:
        async with configured_store(config) as store:
            ingest = Ingestor(
                store,
                config.issuers,
                config.clock_skew_seconds,
                certificates=config.certificates,
            )
            if args.kind == "index":
                events = index_events(path, issuer.name, report)
            elif args.kind == "crl":
                events = crl_events(path, issuer, cert, report)
            else:
                events = certificate_events(path, issuer, cert, report)
            await run_import(ingest, events, report)

    try:
        trio.run(main)
    except (ImportError_, StoreError, ConfigError, OSError) as exc:
        print(f"revocd import: {exc}", file=sys.stderr)
        return 1
    if config.audit.enabled:
        # The imported file is the evidence; the record names it by digest, with the counts.
        record_command(
            open_audit_log(config.audit, config.audit_file),
            "import.completed",
            issuer=issuer.name,
            what=args.kind,
            path=str(path.resolve()),
            sha256=_digest(path),
            counts=dict(report.counts),
        )
    print(report.summary())
    for line in report.errors:
        print(f"  {line}")
    problems = report.counts["rejected"] + report.counts["failed"]
    if len(report.errors) < problems:
        print(f"  ... and {problems - len(report.errors)} more")
    return 1 if problems else 0


def _digest(path: Path) -> str:
    """SHA-256 of an imported file (what `sha256sum` prints), or of a directory's files
    in name order, each preceded by its name."""
    digest = hashlib.sha256()
    directory = path.is_dir()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if directory else [path]
    for file in files:
        if directory:
            digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
