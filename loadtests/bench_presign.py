"""Benchmark of the pre-signer's sweep and of the store's size per certificate.

Loads N certificates (default 1,000,000) into an embedded valkey-server through the real
ingest path (durable Lua, so the due index is what the apply script makes), stores a
pre-signed answer of real size for each through the real write script, then measures:

- a sweep with nothing due (the pre-signer's steady state between re-signs), next to
  the anchor of reading every record and answer once, which is what a sweep cost
  before the due index (layout 1);
- a sweep with 1% of the certificates due (signing and storing them);
- the store's memory per certificate, records and indexes apart from answers;
- recovery: how long a restarted valkey-server takes to load its AOF, after a rewrite.

valkey-server is pinned to core 0, the benchmark to core 1.

    .venv/bin/python loadtests/bench_presign.py [--certs 1000000] [--write docs/benchmarks.md]
"""

import argparse
import datetime as dt
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from bench_store import events
from benchdoc import cpu_model, replace_section

from responder.answers.issuers import IssuerRuntime
from responder.config import IssuerConfig
from responder.domain.answering import single_for_record
from responder.domain.timing import DAY, Schedule, due_at
from responder.ingest import Ingestor
from responder.ocsp import HashAlgorithm
from responder.policy import Policy
from responder.presign import Presigner, PresignSettings
from responder.signing import ResponderIdentity, SoftwareSigner
from responder.store import PreSigned, Store, ValkeyProcess, keys
from responder.testing import pki

PARTITIONS = 64


def runtime() -> IssuerRuntime:
    root = pki.make_root("bench root")
    issuer = pki.make_intermediate("bench issuing CA", root)
    responder = pki.make_responder(issuer)
    config = IssuerConfig("bench", Path("bench.pem"), Policy.TLS, partitions=PARTITIONS)
    identity = ResponderIdentity(SoftwareSigner(responder.key), issuer.cert, responder.cert)
    return IssuerRuntime(config, identity, Schedule(validity=4 * DAY - 1))


async def used_memory(store: Store) -> int:
    info = await store.client.info("memory")
    return int(info["used_memory"])


async def load(store: Store, issuer: IssuerRuntime, n: int, first: int) -> dict[str, float]:
    out: dict[str, float] = {}
    ingest = Ingestor(store, {"bench": issuer.config})
    base = await used_memory(store)
    t0 = time.perf_counter()
    for start in range(0, n, 5000):
        results = await ingest.submit(events(first + start, min(5000, n - start)))
        assert all(r.result == "applied" for r in results)
    out["ingest s"] = time.perf_counter() - t0
    with_records = await used_memory(store)
    # One real signature, stored for every certificate: the answers' size is what counts.
    now = int(time.time())
    this_update, next_update = issuer.schedule.window(now)
    probe = await store.get_records("bench", [first])
    cid = issuer.hashes.cert_id(HashAlgorithm.SHA1, first)
    der = await issuer.identity.sign(
        [single_for_record(cid, probe[first], this_update, next_update)], now
    )
    out["answer bytes"] = len(der)
    t0 = time.perf_counter()
    for start in range(0, n, 5000):
        serials = list(range(first + start, first + min(n, start + 5000)))
        records = await store.get_records("bench", serials)
        await store.put_answers(
            "bench",
            [
                (
                    records[s],
                    PreSigned(this_update, next_update, der),
                    due_at(issuer.schedule, s, this_update, next_update),
                )
                for s in serials
            ],
        )
    out["answers s"] = time.perf_counter() - t0
    with_answers = await used_memory(store)
    out["records+indexes B/cert"] = (with_records - base) / n
    out["answers B/cert"] = (with_answers - with_records) / n
    return out


async def full_read(store: Store) -> tuple[float, int]:
    """The anchor: every record and every answer read once, partition by partition, in
    chunks of 500 (HSCAN of the records, MGET of their answers): a layout-1 sweep's I/O."""
    t0 = time.perf_counter()
    read = 0
    for p in range(PARTITIONS):
        cursor = None
        while cursor != 0:
            cursor, found = await store.client.hscan(
                keys.certs("bench", p), cursor=cursor or 0, count=500
            )
            if found:
                serials = [int(f, 16) for f in found]
                answers = await store.get_answers("bench", p, serials)
                read += len(answers)
    return time.perf_counter() - t0, read


async def measure(url: str, n: int) -> dict[str, Any]:
    issuer = runtime()
    out: dict[str, Any] = {}
    first = random.randrange(1 << 60, 1 << 62)
    async with Store.open(url) as store:
        await store.register_issuers([issuer.config])
        out.update(await load(store, issuer, n, first))
        presigner = Presigner(store, [issuer], PresignSettings(batch=256, concurrency=4))
        t0 = time.perf_counter()
        stored = await presigner.sweep()
        out["sweep, nothing due s"] = time.perf_counter() - t0
        assert stored == 0, stored
        out["full read s"], read = await full_read(store)
        assert read == n, read
        # 1% due: their re-sign time is now.
        due = random.sample(range(first, first + n), n // 100)
        for start in range(0, len(due), 1000):
            group: dict[int, list[str]] = {}
            for s in due[start : start + 1000]:
                group.setdefault(keys.partition_of(s, PARTITIONS), []).append(keys.serial_field(s))
            for p, fields in group.items():
                await store.client.zadd(keys.due("bench", p), {f: 0 for f in fields})
        t0 = time.perf_counter()
        stored = await presigner.sweep()
        out["sweep, 1% due s"] = time.perf_counter() - t0
        out["sweep, 1% due stored"] = stored
        await store.client.bgrewriteaof()
        while True:
            info = await store.client.info("persistence")
            if not int(info["aof_rewrite_in_progress"]) and not int(info["aof_rewrite_scheduled"]):
                break
            await trio.sleep(0.2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--certs", type=int, default=1_000_000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    pin = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1
    with tempfile.TemporaryDirectory() as tmp:
        server = ValkeyProcess(Path(tmp) / "valkey").start()
        try:
            assert server.process is not None
            if pin:
                os.sched_setaffinity(server.process.pid, {0})
                os.sched_setaffinity(0, {1})
            out = trio.run(measure, server.url, args.certs)
            aof = sum(f.stat().st_size for f in (Path(tmp) / "valkey").rglob("*.aof*"))
            # Recovery: a crash, then a restart that loads the rewritten AOF.
            server.kill()
            t0 = time.perf_counter()
            server.start()
            out["restart s"] = time.perf_counter() - t0
            out["aof bytes"] = aof
        finally:
            server.stop()
    n = args.certs
    for k, v in out.items():
        print(f"{k:30s} {v:,.2f}")
    per_cert = out["records+indexes B/cert"] + out["answers B/cert"]
    ratio = out["full read s"] / out["sweep, nothing due s"]
    section = [
        "## Pre-signer sweep and store size",
        "",
        f"Measured {dt.date.today().isoformat()} on {cpu_model()}, Python "
        f"{platform.python_version()}: {n:,} certificates of one issuer ({PARTITIONS} "
        "partitions) in the embedded valkey-server (pinned to core 0), each with a "
        f"pre-signed answer of {out['answer bytes']:.0f} bytes (P-256, responder certificate "
        "included); benchmark pinned to core 1.",
        "",
        "Command: `.venv/bin/python loadtests/bench_presign.py --write docs/benchmarks.md` "
        "(part of `make bench`).",
        "",
        "| what | figure |",
        "|---|---:|",
        f"| sweep with nothing due (due index) | {out['sweep, nothing due s']:.3f} s |",
        f"| anchor: read every record and answer once (a sweep before the index) "
        f"| {out['full read s']:.1f} s |",
        f"| sweep with 1% due ({out['sweep, 1% due stored']:,} signed and stored) "
        f"| {out['sweep, 1% due s']:.1f} s |",
        f"| store memory per certificate: records and indexes "
        f"| {out['records+indexes B/cert']:.0f} B |",
        f"| store memory per certificate: its answer key | {out['answers B/cert']:.0f} B |",
        f"| AOF after a rewrite | {out['aof bytes'] / n:.0f} B per certificate |",
        f"| restart after SIGKILL until the server answers (AOF load) | {out['restart s']:.1f} s |",
        "",
        f"- a sweep with nothing due costs {1 / ratio:.4f} of reading everything "
        f"({ratio:,.0f}x less); it sends a few commands per partition, whatever the count of "
        "certificates",
        f"- {per_cert:,.0f} bytes of store memory per certificate in all; sizing for 10M and "
        "100M certificates is in [store.md](store.md#sizing)",
        f"- ingest of the {n:,} `issued` events (batches of 5,000, durable): "
        f"{out['ingest s']:.1f} s; storing their answers: {out['answers s']:.1f} s",
    ]
    if args.write:
        replace_section(args.write, "bench_presign", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
