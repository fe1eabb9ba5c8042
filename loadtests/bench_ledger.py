"""What the propagation ledger costs durable revocation ingest: the same revocations
applied with the ledger off and on, alternately, against the embedded store as revocd
runs it (AOF, appendfsync always), the store pinned to core 0 and the benchmark to
core 1. The ledger adds, per revocation, one hash (four fields, with a TTL) and an
index entry, written by the apply script atomically with the revocation.

    .venv/bin/python loadtests/bench_ledger.py [--rounds 5] [--write docs/benchmarks.md]
"""

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from pathlib import Path

import trio
from benchdoc import pinned_valkey, replace_section

from responder.config import IssuerConfig
from responder.ingest import Ingestor
from responder.policy import Policy
from responder.store import Store

N = 20_000
BATCH = 10_000


def batch(kind: str, issuer: str, first: int, n: int) -> list[dict[str, str]]:
    out = []
    for i in range(first, first + n):
        event = {"type": kind, "issuer": issuer, "serial": format(i, "x")}
        if kind == "issued":
            event["not_after"] = "2027-06-01T00:00:00Z"
        else:
            event |= {"revoked_at": "2026-11-01T00:00:00Z", "reason": "keyCompromise"}
        out.append(event)
    return out


async def rates(url: str, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"off": [], "on": []}
    async with Store.open(url) as store:
        for r in range(rounds):
            for mode in ("off", "on"):
                name = f"b{mode}{r}"
                issuers = {name: IssuerConfig(name, Path("b.pem"), Policy.TLS, partitions=64)}
                await store.register_issuers(issuers.values())
                ingest = Ingestor(store, issuers)
                store.ledger_seconds = 86400 * 400 if mode == "on" else 0
                for first in range(1, N + 1, BATCH):
                    await ingest.submit(batch("issued", name, first, BATCH), None)
                started = time.perf_counter()
                for first in range(1, N + 1, BATCH):
                    results = await ingest.submit(batch("revoked", name, first, BATCH), None)
                    assert all(x.result == "applied" for x in results)
                out[mode].append(N / (time.perf_counter() - started))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    with pinned_valkey() as (url, _):
        found = trio.run(rates, url, args.rounds)
    off, on = statistics.median(found["off"]), statistics.median(found["on"])
    print(f"ledger off {off:,.0f}/s, on {on:,.0f}/s, ratio {on / off:.2f}")
    section = [
        "## What the propagation ledger costs revocation ingest",
        "",
        f"Measured {dt.date.today().isoformat()}, Python {platform.python_version()}, "
        f"{platform.machine()} ({os.cpu_count()} cores): embedded valkey-server (AOF, "
        "appendfsync always) on core 0, the benchmark on core 1; "
        f"{N:,} revocations per round in batches of {BATCH:,}, 64 partitions, ledger off and "
        f"on alternately, {args.rounds} rounds, medians.",
        "",
        "Command: `.venv/bin/python loadtests/bench_ledger.py --write docs/benchmarks.md` "
        "(part of `make bench`).",
        "",
        "| ledger | revocations/s (durable) |",
        "|---|---:|",
        f"| off (`propagation.enabled = false`) | {off:,.0f} |",
        f"| on | {on:,.0f} |",
        "",
        f"With the ledger, revocations are acknowledged at {on / off:.2f} of the rate without. "
        "The ledger adds, per revocation, a hash with four fields, its TTL and an index "
        "entry, all written to the AOF. Issuances cost nothing extra: only revocations "
        "start a ledger.",
    ]
    if args.write:
        replace_section(args.write, "ledger_cost", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
