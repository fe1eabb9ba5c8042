"""What the answer cache costs in memory, and how cached GETs scale with the number of
distinct answers, against nginx serving the same answers as files.

1. Memory: two data plane processes, the shape of `server.workers = 2` (each with its
   own AnswerCache, both on one port by SO_REUSEPORT), each holding N cached answers of
   800 bytes with their rendered response heads and URL index entries, as the fast
   path keeps them. RSS of each before and after, bytes per answer, and the ratio to
   the DER itself.
2. Working set: one data plane process pinned to core 0 holding N answers, N from
   1,000 to 1,000,000, wrk on core 1 asking for them at random over 64 keep-alive
   connections; nginx (one worker, core 0) serving the same N answers as files.

    .venv/bin/python loadtests/bench_memory.py [--max 1000000] [--write docs/benchmarks.md]

The data plane here is revocd's own (DataPlane + HttpServer, the fast path), with the
answers put in its cache directly rather than fetched from a store: what is measured
is what a worker holds and serves once warm.
"""

import argparse
import multiprocessing
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_scaling import wrk as wrk_stats
from benchdoc import cpu_model, replace_section
from nginx_conf import main_conf

ANSWER_BYTES = 800


def path_of(n: int) -> str:
    return f"/a/{n // 1000}/{n}"


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def worker(port: int, count: int, cpu: int | None, report: Any, stop: Any) -> None:
    """A data plane holding `count` answers, on the shared port, until `stop` is set."""
    import trio

    from responder.answers.answer import Answer
    from responder.answers.cache import AnswerCache
    from responder.dataplane.app import DataPlane, ocsp_head
    from responder.http.server import HttpServer

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    before = rss_kib()
    now = int(time.time())
    cache = AnswerCache(max(count, 1))
    for n in range(count):
        der = n.to_bytes(8, "big") * (ANSWER_BYTES // 8)
        answer = Answer(der, now - 300, now + 4 * 86400, now + 2 * 86400, True, "store", "good")
        key = ("bench", n, 0)
        cache.put(key, answer)
        cache.remember_url(path_of(n).encode(), key)
    for entry in cache._entries.values():
        entry.head = ocsp_head(entry.answer)  # what the fast path renders at first hit
    report.put((os.getpid(), before, rss_kib()))

    async def main() -> None:
        plane = DataPlane(None, cache=cache)  # type: ignore[arg-type]
        server = HttpServer(plane, fast=plane.fast)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(4096)
        sock.setblocking(False)
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, [listener])
            while not stop.is_set():
                await trio.sleep(0.2)
            nursery.cancel_scope.cancel()

    trio.run(main)


def wrk(url: str, seconds: int, connections: int, script: Path) -> dict[str, float]:
    """bench_scaling's wrk, refusing a run in which any request failed."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c1", "-d1s", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"requests to {url} failed:\n{out}")
    return wrk_stats(url, seconds, connections, script)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} not listening")


def start_workers(count: int, workers: int, cpus: list[int | None]) -> tuple[Any, list[Any], int]:
    ctx = multiprocessing.get_context("spawn")
    report, stop = ctx.Queue(), ctx.Event()
    port = free_port()
    procs = [
        ctx.Process(target=worker, args=(port, count, cpus[i], report, stop))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    sizes = [report.get(timeout=600) for _ in procs]
    wait_port(port)
    return stop, [(p, s) for p, s in zip(procs, sizes, strict=True)], port


def stop_workers(stop: Any, procs: list[Any]) -> None:
    stop.set()
    for p, _ in procs:
        p.join(10)
        if p.is_alive():
            p.kill()


def paths_script(tmp: Path, count: int) -> Path:
    script = tmp / f"paths-{count}.lua"
    script.write_text(
        "paths = {"
        + ",".join(f'"{path_of(n)}"' for n in range(count))
        + "}\nrequest = function() return wrk.format('GET', paths[math.random(#paths)]) end\n"
    )
    return script


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    for tool in ("wrk", "taskset", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (make sysdeps installs it)")
    sizes = [n for n in (1_000, 10_000, 100_000, 1_000_000) if n <= args.max]
    top = sizes[-1]

    # 1. memory with two workers
    stop, procs, _ = start_workers(top, 2, [None, None])
    memory = [(pid, before, after) for _, (pid, before, after) in procs]
    stop_workers(stop, procs)

    # 2. throughput and p99 by number of distinct answers
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        root = tmp / "nginx"
        for n in range(top):
            target = root / "answers" / path_of(n).lstrip("/")
            if n % 1000 == 0:
                target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(n.to_bytes(8, "big") * (ANSWER_BYTES // 8))
        nginx_port = free_port()
        (root / "nginx.conf").write_text(
            main_conf(
                root,
                "    server {\n"
                f"        listen 127.0.0.1:{nginx_port};\n"
                f"        root {root}/answers;\n"
                "        default_type application/ocsp-response;\n"
                '        location / { add_header Cache-Control "max-age=300, public"; }\n'
                "    }\n",
                worker_connections=4096,
                error_log="warn",
            )
        )
        nginx = subprocess.Popen(
            ["taskset", "-c", "0", "nginx", "-c", str(root / "nginx.conf"), "-p", str(root)],
            start_new_session=True,
        )
        try:
            wait_port(nginx_port)
            for count in sizes:
                script = paths_script(tmp, count)
                stop, procs, port = start_workers(count, 1, [0])
                try:
                    wrk(f"http://127.0.0.1:{port}", 2, 64, script)  # warm-up
                    ours = wrk(f"http://127.0.0.1:{port}", args.seconds, 64, script)
                finally:
                    stop_workers(stop, procs)
                wrk(f"http://127.0.0.1:{nginx_port}", 2, 64, script)
                theirs = wrk(f"http://127.0.0.1:{nginx_port}", args.seconds, 64, script)
                rows.append((count, ours, theirs))
                print(count, ours, theirs)
        finally:
            nginx.terminate()
            nginx.wait(10)

    lines = [
        "## Answer cache memory, and GETs by number of distinct answers",
        "",
        f"`.venv/bin/python loadtests/bench_memory.py --max {args.max} --seconds "
        f"{args.seconds} --write docs/benchmarks.md` on {cpu_model()}, Python "
        f"{platform.python_version()}. Answers of {ANSWER_BYTES} bytes; the data plane is "
        "revocd's (DataPlane + HttpServer, the fast path) with its cache filled directly.",
        "",
        f"Memory, two data plane processes each holding {top:,} answers (each its own "
        "cache, as `server.workers = 2` is today):",
        "",
        "| process | RSS before (MiB) | RSS with the answers (MiB) | bytes per answer "
        "| per answer / DER |",
        "|---|---:|---:|---:|---:|",
    ]
    total = 0
    for pid, before, after in memory:
        per = (after - before) * 1024 / top
        total += after
        lines.append(
            f"| worker {pid} | {before / 1024:,.0f} | {after / 1024:,.0f} | {per:,.0f} "
            f"| {per / ANSWER_BYTES:.2f}x |"
        )
    lines += [
        "",
        f"- both workers: {total / 1024:,.0f} MiB RSS for {top:,} answers, one copy per "
        f"worker (goal: one copy per host at ≤ 1.3x the DER; today "
        f"{(memory[0][2] - memory[0][1]) * 1024 / top / ANSWER_BYTES:.1f}x per worker, "
        "times the workers)",
        "",
        "GETs by number of distinct answers (64 keep-alive connections, wrk `-t1` on core 1; "
        "revocd one process and nginx one worker on core 0):",
        "",
        "| distinct answers | revocd GET/s | revocd p99 ms | nginx GET/s | nginx p99 ms | ratio |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for count, ours, theirs in rows:
        lines.append(
            f"| {count:,} | {ours['rps']:,.0f} | {ours.get('p99_ms', 0):.2f} "
            f"| {theirs['rps']:,.0f} | {theirs.get('p99_ms', 0):.2f} "
            f"| {ours['rps'] / theirs['rps']:.2f}x |"
        )
    lines.append("")
    for line in lines:
        print(line)
    if args.write:
        replace_section(args.write, "bench_memory", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
