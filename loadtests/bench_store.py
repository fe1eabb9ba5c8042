"""Benchmark of durable event ingest and index.txt import against the embedded store.

The embedded valkey-server runs as revocd runs it (AOF, appendfsync always)
pinned to one core, the benchmark to the other. Anchors in the same run: raw
coredis writes of one hash field per event followed by WAITAOF, which is the
floor any durable ingest over this store pays.

    .venv/bin/python loadtests/bench_store.py [--import-lines 1000000] [--write docs/benchmarks.md]
"""

import argparse
import datetime as dt
import platform
import random
import time
import warnings
from pathlib import Path

import trio
from benchdoc import pinned_valkey, replace_section

from responder.config import IssuerConfig
from responder.importers import ImportReport, index_events, run_import
from responder.ingest import Ingestor
from responder.policy import Policy
from responder.store import Store

ISSUERS = {"bench": IssuerConfig("bench", Path("bench.pem"), Policy.TLS, partitions=64)}


def events(first: int, n: int) -> list[dict[str, str]]:
    return [
        {
            "type": "issued",
            "issuer": "bench",
            "serial": format(first + i, "x"),
            "not_after": "2027-06-01T00:00:00Z",
        }
        for i in range(n)
    ]


async def ingest_rates(url: str, singles: int, batches: int) -> dict[str, float]:
    out: dict[str, float] = {}
    async with Store.open(url) as store:
        await store.register_issuers(ISSUERS.values())
        ingest = Ingestor(store, ISSUERS)
        serial = random.randrange(1 << 60, 1 << 62)

        t0 = time.perf_counter()
        for i in range(singles):
            results = await ingest.submit(events(serial + i, 1))
            assert results[0].result == "applied"
        out["ingest, batch of 1 (sequential)"] = singles / (time.perf_counter() - t0)
        serial += singles

        t0 = time.perf_counter()
        for b in range(batches):
            results = await ingest.submit(events(serial + b * 1000, 1000))
            assert all(r.result == "applied" for r in results)
        out["ingest, batch of 1,000"] = batches * 1000 / (time.perf_counter() - t0)
        serial += batches * 1000

        client = store.client
        t0 = time.perf_counter()
        for i in range(singles):
            with client.ensure_persistence(1, 0, 2000):
                await client.hset("raw:{a}", {format(serial + i, "x"): "g|1|1|1|0"})
        out["anchor: raw HSET + WAITAOF, one at a time"] = singles / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        for b in range(batches):
            async with client.pipeline(transaction=False) as pipe:
                for i in range(1000):
                    pipe.hset(
                        f"raw:{{{i % 64}}}", {format(serial + b * 1000 + i, "x"): "g|1|1|1|0"}
                    )
                # same connection as the writes, so it covers them
                pipe.waitaof(1, 0, 2000)
        out["anchor: raw pipeline of 1,000 HSET + WAITAOF"] = (
            batches * 1000 / (time.perf_counter() - t0)
        )
    return out


def write_index(path: Path, lines: int) -> None:
    with path.open("w") as f:
        for i in range(lines):
            serial = format(0x100000 + i, "X")
            if i % 100 == 0:
                f.write(
                    f"R\t270601000000Z\t261101000000Z,keyCompromise\t{serial}\tunknown\t/CN=x{i}\n"
                )
            else:
                f.write(f"V\t270601000000Z\t\t{serial}\tunknown\t/CN=x{i}\n")


async def import_rate(url: str, path: Path) -> tuple[float, ImportReport]:
    async with Store.open(url) as store:
        await store.register_issuers(ISSUERS.values())
        report = ImportReport(str(path))
        t0 = time.perf_counter()
        await run_import(Ingestor(store, ISSUERS), index_events(path, "bench", report), report)
        return time.perf_counter() - t0, report


def main() -> int:
    # coredis suggests ensure_persistence for WAITAOF; the anchor needs it inside a pipeline.
    warnings.filterwarnings("ignore", message="Use the :meth:`Redis.ensure_persistence`")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--singles", type=int, default=500)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--import-lines", type=int, default=1_000_000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    with pinned_valkey() as (url, tmp):
        rates = trio.run(ingest_rates, url, args.singles, args.batches)
        for name, value in rates.items():
            print(f"{name:50s} {value:>10,.0f} events/s", flush=True)
        index = tmp / "index.txt"
        write_index(index, args.import_lines)
        seconds, report = trio.run(import_rate, url, index)
        print(f"import {args.import_lines:,} lines: {seconds:.1f} s; {report.summary()}")
    single = rates["ingest, batch of 1 (sequential)"]
    batch = rates["ingest, batch of 1,000"]
    raw_single = rates["anchor: raw HSET + WAITAOF, one at a time"]
    raw_batch = rates["anchor: raw pipeline of 1,000 HSET + WAITAOF"]
    section = [
        "## Event ingest and import (embedded store, durable)",
        "",
        f"Measured {dt.date.today().isoformat()}, Python {platform.python_version()}, embedded "
        "valkey-server (AOF, appendfsync always: every acknowledgement is on disk) pinned to "
        "core 0, benchmark pinned to core 1, 64 partitions.",
        "",
        "Command: `.venv/bin/python loadtests/bench_store.py --write docs/benchmarks.md` "
        "(part of `make bench`).",
        "",
        "| what | events/s |",
        "|---|---:|",
        *(f"| {name} | {value:,.0f} |" for name, value in rates.items()),
        "",
        f"- batch of 1: {single / raw_single:.2f} of the raw durable-write floor "
        "(validation, Lua state machine, change feed and pub/sub included)",
        f"- batch of 1,000: {batch / raw_batch:.2f} of the raw pipelined floor",
        f"- import of a {args.import_lines:,}-line `index.txt` (1% revoked): {seconds:.1f} s, "
        f"{args.import_lines / seconds:,.0f} lines/s ("
        + ", ".join(f"{k} {v:,}" for k, v in sorted(report.counts.items()))
        + ")",
    ]
    if args.write:
        replace_section(args.write, "bench_store", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
