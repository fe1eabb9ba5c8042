"""`revocd report`: revocations with their propagation timelines and deadlines, CRL
publications, the audit chain's head and the configuration digests, for a time range;
with --serials, an incident's CCADB counts."""

import argparse
import sys
import time


def _time(text: str) -> float:
    from datetime import datetime

    if text == "now":
        return time.time()
    if text.endswith(("h", "d")) and text[:-1].isdigit():
        return time.time() - int(text[:-1]) * (3600 if text[-1] == "h" else 86400)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a time like 2026-11-01T00:00:00Z, 'now', or an age like 24h or 30d"
        ) from None


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    report = sub.add_parser(
        "report",
        help="evidence for auditors and incident reports: every revocation's propagation "
        "timeline and deadlines, CRL publications, the audit chain's head",
    )
    report.add_argument("-c", "--config", required=True, help="revocd.toml")
    report.add_argument("--since", type=_time, default="30d", help="start (default: 30d ago)")
    report.add_argument("--until", type=_time, default="now", help="end (default: now)")
    report.add_argument("--format", choices=["json", "csv", "html"], default="json")
    report.add_argument("-o", "--out", help="write here instead of standard output")
    report.add_argument(
        "--serials",
        help="an incident's serials, one per line (hex, or ISSUER:SERIAL): adds the counts "
        "CCADB incident reports ask for",
    )
    report.add_argument("--issuer", help="the issuer of --serials lines without one")
    report.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..roles.report import report_command

    since = args.since if isinstance(args.since, float) else _time(args.since)
    until = args.until if isinstance(args.until, float) else _time(args.until)
    try:
        return report_command(
            args.config, since, until, args.format, args.out, args.serials, args.issuer
        )
    except (ConfigError, OSError) as exc:
        print(f"revocd report: {exc}", file=sys.stderr)
        return 2
