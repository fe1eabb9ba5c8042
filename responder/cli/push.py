"""`revocd push`: send events to a control plane, from the command line or a JSON file."""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BATCH = 10_000


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    push = sub.add_parser(
        "push",
        help="push issued/revoked/unrevoked events to a control plane",
        description="One event from options, or a batch from --file (a JSON list, or "
        '{"events": [...]}). The token comes from --token-file or REVOCD_TOKEN.',
    )
    push.add_argument("--url", required=True, help="control plane base URL")
    push.add_argument("--token-file", help="file holding the bearer token")
    push.add_argument("--file", help="JSON file of events ('-' for standard input)")
    push.add_argument("--type", choices=["issued", "revoked", "unrevoked"])
    push.add_argument("--issuer")
    push.add_argument("--serial", help="hex serial")
    push.add_argument("--not-after", help="RFC 3339 time (issued)")
    push.add_argument("--revoked-at", help="RFC 3339 time (revoked; default now)")
    push.add_argument("--reason", help="RFC 5280 reason name (revoked)")
    push.add_argument("--invalidity-date", help="RFC 3339 time (revoked)")
    push.set_defaults(handler=run)


def _events(args: argparse.Namespace) -> list[Any]:
    if args.file:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        loaded = json.loads(text)
        return list(loaded["events"] if isinstance(loaded, dict) else loaded)
    if not (args.type and args.issuer and args.serial):
        raise ValueError("give --type, --issuer and --serial, or --file")
    event: dict[str, str] = {"type": args.type, "issuer": args.issuer, "serial": args.serial}
    if args.type == "issued":
        if not args.not_after:
            raise ValueError("--not-after: required for an issued event")
        event["not_after"] = args.not_after
    elif args.type == "revoked":
        event["revoked_at"] = args.revoked_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if args.reason:
            event["reason"] = args.reason
        if args.invalidity_date:
            event["invalidity_date"] = args.invalidity_date
    return [event]


def run(args: argparse.Namespace) -> int:
    try:
        events = _events(args)
        token = (
            Path(args.token_file).read_text().strip()
            if args.token_file
            else os.environ.get("REVOCD_TOKEN", "")
        )
        if not token:
            raise ValueError("--token-file: no token (or set REVOCD_TOKEN)")
    except (ValueError, OSError, KeyError) as exc:
        print(f"revocd push: {exc}", file=sys.stderr)
        return 2
    # The control plane takes at most BATCH events per request (docs/store.md).
    worst = 0
    for start in range(0, max(1, len(events)), BATCH):
        worst = max(worst, _send(args.url, token, events[start : start + BATCH]))
        if worst == 1 and start + BATCH < len(events):
            print(f"revocd push: stopped after event {start + BATCH}", file=sys.stderr)
            break
    return worst


def _send(url: str, token: str, events: list[Any]) -> int:
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/events",
        data=json.dumps({"events": events}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError as exc:
        print(f"revocd push: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print(body.decode(errors="replace").strip())
    return 0 if status == 200 else 1
