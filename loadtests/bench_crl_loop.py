"""What cached GETs see while a large CRL is built and published in the same process.

One revocd process (data plane with the GET reactor + CRL generator, as `revocd serve` runs them
by default) pinned to core 0; wrk pinned to core 1 asks for cached answers over 64
keep-alive connections. Three phases in one run:

  idle       no CRL work
  off-loop   a 1M-entry shard republished the way revocd does it (origins in a thread)
  off-loop, checker on core 1
             the same with the checking process on the other core
  off-loop, checker on core 1, no requests
             the same without wrk: the stall the publication alone causes
  on-loop    the same, with the origin called on the event loop (how revocd did it
             before crlgen/publish.py: OffLoop), for the side-by-side ratio

For each: wrk's p50/p99 over a window that covers the publication, the longest stall of
a 1 ms ticker task on the loop (what any request arriving then waits at least), and the
publication's duration.

    .venv/bin/python loadtests/bench_crl_loop.py [--entries 1000000] [--write docs/benchmarks.md]

The cached answers are 800 random bytes each, keyed by URL: the reactor does not
decode what it serves, so their content does not change what is measured.
"""

import argparse
import gc
import itertools
import os
import platform
import random
import shutil
import socket
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio
from bench_crl import records
from bench_scaling import wrk
from benchdoc import cpu_model, replace_section

from crlgen import publish
from crlgen.builder import Shard
from crlgen.generator import IssuerCrls, issuer_crls
from responder.answers.arena import Arena
from responder.answers.cache import AnswerCache
from responder.config import CrlConfig, IssuerConfig
from responder.dataplane.app import DataPlane, http_server
from responder.http.reactor import ArenaReader
from responder.policy import Policy
from responder.signing import SoftwareSigner
from responder.testing import pki

ANSWERS = 10_000


class OnLoop:
    """The origin called directly, blocking the loop: the behaviour before OffLoop."""

    def __init__(self, origin: Any, label: str) -> None:
        self.origin = origin
        self.label = label

    async def current(self, name: str) -> bytes | None:
        return self.origin.current(name)  # type: ignore[no-any-return]

    async def publish(self, *args: Any) -> None:
        self.origin.publish(*args)

    async def put(self, name: str, data: bytes) -> None:
        self.origin.put(name, data)


async def phase(
    port: int, script: Path, seconds: int, work: Any, crls: IssuerCrls | None
) -> dict[str, float]:
    """wrk for `seconds`; after one second, `work` (a CRL publication) if given."""
    ticks: list[float] = []
    result: dict[str, float] = {}

    async def ticker() -> None:
        while True:
            await trio.sleep(0.001)
            ticks.append(time.perf_counter())

    def longest_stall(since: float, until: float) -> float:
        """The longest the ticker went without running, in ms (1 ms is no stall)."""
        seen = [since, *(t for t in ticks if since < t < until), until]
        return max(b - a for a, b in itertools.pairwise(seen)) * 1000 - 1

    async def publish() -> None:
        await trio.sleep(1)
        started = time.perf_counter()
        assert crls is not None
        assert await work(crls)
        ended = time.perf_counter()
        result["publish_s"] = ended - started
        result["max_stall_ms"] = longest_stall(started, ended)

    done = trio.Event()

    async def publish_then_done() -> None:
        await publish()
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        if work is not None:
            nursery.start_soon(publish_then_done)
        load = await trio.to_thread.run_sync(
            lambda: wrk(f"http://127.0.0.1:{port}", seconds, 64, script)
        )
        if work is not None:
            # A publication longer than the wrk window is still measured to its end
            # (and reported: publication s above the window means wrk saw only part).
            await done.wait()
        nursery.cancel_scope.cancel()
    if work is None:
        result["max_stall_ms"] = longest_stall(ticks[0], ticks[-1])
    result.update(load)
    return result


async def quiet_phase(crls: IssuerCrls) -> dict[str, float]:
    """The publication with no requests coming in: the stall it alone causes."""
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            await trio.sleep(0.001)
            ticks.append(time.perf_counter())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await trio.sleep(0.2)
        started = time.perf_counter()
        assert await republish(crls)
        ended = time.perf_counter()
        nursery.cancel_scope.cancel()
    seen = [started, *(t for t in ticks if started < t < ended), ended]
    stall = max(b - a for a, b in itertools.pairwise(seen)) * 1000 - 1
    return {"rps": 0.0, "max_stall_ms": stall, "publish_s": ended - started}


async def republish(crls: IssuerCrls) -> bool:
    """One more revocation, then the shard's publication, as a revocation triggers it."""
    record = replace(records(1)[0], serial=random.getrandbits(120) | 1 << 125)
    crls.apply(record.serial, record)
    return await crls.publish(0)


async def bench(entries: int, seconds: int, tmp: Path) -> dict[str, dict[str, float]]:
    now = int(time.time())
    issuer = pki.make_intermediate("loop issuer", pki.make_root("loop root"))
    config = IssuerConfig(
        "loop",
        tmp / "i.pem",
        Policy.TLS,
        crl_shards=1,
        crl=CrlConfig(key=tmp / "k", url="http://crl.test/loop.crl"),
    )
    crls = issuer_crls(config, issuer.cert, SoftwareSigner(issuer.key), tmp / "crl")
    revoked = records(entries)
    crls.shards = {0: Shard.from_records(revoked)}
    crls.not_after = {r.serial: r.not_after for r in revoked}
    del revoked
    gc.freeze()  # as IssuerCrls.load does after loading
    assert await crls.publish(0)  # the CRL that each phase replaces

    # The answers in a shared answer cache, as revocd serve keeps GET answers; this
    # process owns it (the heartbeat is one more task on the loop, as in revocd).
    arena = Arena.create(tmp / "answers.arena", 32 << 20)
    paths = []
    for n in range(ANSWERS):
        target = b"/ocsp/%d" % n
        stored = arena.put(
            target,
            arena.snapshot(n),
            os.urandom(800),
            now - 300,
            now + 4 * 86400,
            now + 2 * 86400,
            0,
        )
        assert stored
        paths.append(target.decode())
    script = tmp / "paths.lua"
    script.write_text(
        "paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n"
        "request = function() return wrk.format('GET', paths[math.random(#paths)]) end\n"
    )
    plane = DataPlane(None, cache=AnswerCache(1), arena=ArenaReader(arena))  # type: ignore[arg-type]
    server = http_server(plane)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    out: dict[str, dict[str, float]] = {}

    async def beat() -> None:
        while True:
            arena.beat()
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(beat)
        await nursery.start(server.serve, [listener])
        await phase(port, script, 2, None, None)  # warm-up
        out["idle"] = await phase(port, script, seconds, None, None)
        out["off-loop"] = await phase(port, script, seconds, republish, crls)
        checker = publish.CHECKER
        publish.CHECKER = ["taskset", "-c", "1", *checker]
        out["off-loop, checker on core 1"] = await phase(port, script, seconds, republish, crls)
        out["off-loop, checker on core 1, no requests"] = await quiet_phase(crls)
        publish.CHECKER = checker
        threaded = crls.origins
        crls.origins = [OnLoop(o.origin, o.label) for o in threaded]  # type: ignore[misc]
        out["on-loop"] = await phase(port, script, seconds, republish, crls)
        crls.origins = threaded
        nursery.cancel_scope.cancel()
    return out


def goal_lines(results: dict[str, dict[str, float]]) -> list[str]:
    idle = results["idle"]["max_stall_ms"]
    free = results["off-loop, checker on core 1"]["max_stall_ms"]
    shared = results["off-loop"]["max_stall_ms"]
    before = results["on-loop"]["max_stall_ms"]
    quiet = results["off-loop, checker on core 1, no requests"]["max_stall_ms"]
    return [
        f"- longest stall while publishing, checker on its own core: **{free:.0f} ms** "
        f"(goal ≤ 10 ms; the loop's own longest pass under this load is {idle:.0f} ms); "
        f"{shared:.0f} ms when the checker shares the data plane's core; {before:,.0f} ms "
        f"with the origin on the loop; with no requests coming in, the publication alone "
        f"stalls the loop at most {quiet:.0f} ms",
        f"- p99 of cached GETs during the publication: "
        f"{results['off-loop, checker on core 1']['p99_ms']:.1f} ms "
        f"(idle {results['idle']['p99_ms']:.1f} ms)",
        "- wrk's p99 does not show a single long stall (the 64 requests it holds up are "
        "a few hundredths of a percent of the window's requests): the on-loop row's p99 "
        "is low while every client waited seconds once; the stall column is the measure",
        f"- what still holds the loop for {free:.0f} ms at worst was not traced to one "
        "call; the pieces that still run on the loop or hold the GIL in one go are the "
        "change applied to the shard (a list insert into a million entries) and the "
        "encoder's snapshot of the entry list (a million references, copied atomically "
        "so the CRL is consistent), after which the loop can wait up to the "
        "interpreter's 5 ms switch interval for the GIL. The data plane's own passes "
        "are short since cached GETs are answered by the reactor (a pass reads and "
        "answers at most 256 connections), which is most of the gain over the trio "
        "fast path",
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (make sysdeps installs it)")
    os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory() as d:
        results = trio.run(bench, args.entries, args.seconds, Path(d))
    rows = [
        "| phase | GET/s | p50 ms | p99 ms | longest loop stall ms | publication s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        pub = f"{r['publish_s']:.2f}" if "publish_s" in r else "—"
        if not r["rps"]:  # the phase without wrk
            rows.append(f"| {name} | — | — | — | {r['max_stall_ms']:.1f} | {pub} |")
            continue
        rows.append(
            f"| {name} | {r['rps']:,.0f} | {r.get('p50_ms', 0):.2f} | {r.get('p99_ms', 0):.2f} "
            f"| {r['max_stall_ms']:.1f} | {pub} |"
        )
    for row in rows:
        print(row)
    if args.write:
        replace_section(
            args.write,
            "bench_crl_loop",
            [
                f"## Cached GETs while a {args.entries:,}-entry CRL is published",
                "",
                f"`.venv/bin/python loadtests/bench_crl_loop.py --entries {args.entries} "
                f"--seconds {args.seconds} --write docs/benchmarks.md` on {cpu_model()}, "
                f"Python {platform.python_version()}. One process (data plane with the GET "
                "reactor, and CRL generator) on core 0, wrk `-t1 -c64 --latency` on core 1, "
                f"{ANSWERS:,} cached answers; each publishing phase starts the "
                "republication of the shard (one entry added) one second into its wrk "
                "window. `on-loop` calls the origin on the event loop, as revocd did before "
                "`OffLoop`; `off-loop` is revocd now. The longest stall is a 1 ms ticker "
                "task's worst lateness during the publication. The pre-publish checks run in a "
                "process of their own (crlgen/checker.py), which inherits the pin to core 0: "
                "the `checker on core 1` phase runs it there (beside wrk) instead, as a "
                "machine with a core to spare would.",
                "",
                *rows,
                "",
                *goal_lines(results),
            ],
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
