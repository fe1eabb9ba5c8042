"""`revocd audit verify FILE...`: check the audit log's hash chain."""

import argparse
import datetime
import json
import sys

from ..audit.log import Finding, verify


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    audit = sub.add_parser("audit", help="work with the hash-chained audit log")
    actions = audit.add_subparsers(dest="audit_action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "verify",
        help="check that no record was edited, deleted or reordered",
        description=(
            "Walks the chain through the files in order (rotated files first). Exit 0 when "
            "the chain is whole, 1 when a record was edited, deleted or reordered, 2 when a "
            "file cannot be read. Prints the head (last seq and hash): compare it with a "
            "copy kept elsewhere to detect records cut from the end."
        ),
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument(
        "--anchor", help="hash the first record must continue (the head of an earlier file)"
    )
    check.add_argument("--expect-head", help="hash the last record must have")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(handler=run)

    export = actions.add_parser(
        "export-events",
        help="print the applied events as a batch for `revocd push --file -`",
        description=(
            "After restoring the store from a backup, replay what was applied since: the "
            "audit log holds every applied event as the CA sent it. Verify the log first."
        ),
    )
    export.add_argument("files", nargs="+", metavar="FILE")
    export.add_argument(
        "--since", default="", help="only records at or after this time (2026-11-22T10:00:00Z)"
    )
    export.set_defaults(handler=export_events)


def run(args: argparse.Namespace) -> int:
    try:
        result = verify(args.files, anchor=args.anchor)
    except OSError as exc:
        print(f"revocd audit verify: {exc}", file=sys.stderr)
        return 2
    if args.expect_head and result.head_hash != args.expect_head:
        result.errors.append(
            Finding(
                0, result.head_seq, "head differs from --expect-head (records cut from the end?)"
            )
        )
    if args.json:
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "records": result.records,
                    "first_seq": result.first_seq,
                    "head_seq": result.head_seq,
                    "head_hash": result.head_hash,
                    "errors": [vars(f) for f in result.errors],
                    "notes": [vars(f) for f in result.notes],
                },
                indent=2,
            )
        )
    else:
        for finding in result.errors:
            seq = "" if finding.seq is None else f" seq {finding.seq}"
            print(f"TAMPERED {finding.file}:{finding.line}{seq}: {finding.problem}")
        for finding in result.notes:
            seq = "" if finding.seq is None else f" seq {finding.seq}"
            print(f"note {finding.file}:{finding.line}{seq}: {finding.problem}")
        state = "OK" if result.ok else "FAILED"
        print(
            f"{state}: {result.records} records, seq {result.first_seq}..{result.head_seq}, "
            f"head {result.head_hash}"
        )
    return 0 if result.ok else 1


def _when(text: str) -> datetime.datetime:
    when = datetime.datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def export_events(args: argparse.Namespace) -> int:
    try:
        since = _when(args.since) if args.since else None
    except ValueError:
        print(f"revocd audit export-events: --since: not a time: {args.since!r}", file=sys.stderr)
        return 2
    events = []
    skipped = 0
    for path in args.files:
        with open(path, "rb") as f:
            for raw in f:
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue  # a torn line; `verify` reports it
                if record.get("kind") != "event.applied":
                    continue
                if since is not None and _when(record["time"]) < since:
                    continue
                if "event" in record:
                    events.append(record["event"])
                else:
                    skipped += 1  # recorded by digest only (larger than 4 KiB)
    json.dump({"events": events}, sys.stdout)
    sys.stdout.write("\n")
    print(f"{len(events)} applied events exported", file=sys.stderr)
    if skipped:
        print(
            f"{skipped} events were too large to keep in the log; replay them from the CA",
            file=sys.stderr,
        )
    return 0
