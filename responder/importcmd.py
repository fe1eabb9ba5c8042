"""`revocd import`: the CLI side of responder.importers."""

import argparse
import sys
from pathlib import Path

import trio

from .config import ConfigError, load_config
from .importers import (
    ImportError_,
    ImportReport,
    certificate_events,
    crl_events,
    index_events,
    run_import,
)
from .ingest import Ingestor
from .store import StoreError
from .store.connect import open_configured_store


def run_import_command(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"revocd import: {exc}", file=sys.stderr)
        return 2
    issuer = config.issuers.get(args.issuer)
    if issuer is None:
        print(f"revocd import: --issuer: {args.issuer!r} is not in {args.config}", file=sys.stderr)
        return 2
    path = Path(args.path)
    report = ImportReport(str(path))

    async def main() -> None:
        async with open_configured_store(config) as store:
            ingest = Ingestor(store, config.issuers, config.clock_skew_seconds)
            if args.kind == "index":
                events = index_events(path, issuer.name, report)
            elif args.kind == "crl":
                events = crl_events(path, issuer, report)
            else:
                events = certificate_events(path, issuer, report)
            await run_import(ingest, events, report)

    try:
        trio.run(main)
    except (ImportError_, StoreError, ConfigError, OSError) as exc:
        print(f"revocd import: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    for line in report.errors:
        print(f"  {line}")
    problems = report.counts["rejected"] + report.counts["failed"]
    if len(report.errors) < problems:
        print(f"  ... and {problems - len(report.errors)} more")
    return 1 if problems else 0
