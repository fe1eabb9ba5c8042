"""`revocd audit verify FILE...`: check the audit log's hash chain."""

import argparse
import json
import sys

from .audit import Finding, verify


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
