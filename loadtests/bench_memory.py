"""What the answer cache costs in memory, and how cached GETs scale with the number of
distinct answers, against nginx serving the same answers as files.

1. Memory: the host's shared answer cache (responder/answers/arena.py) holding N
   answers of 800 bytes under URLs of realistic length (the base64 of an OCSP request
   with one SHA-1 CertID), and two data plane processes, the shape of
   `server.workers = 2`, both serving from it (one port, SO_REUSEPORT). The cache's
   bytes per answer and the ratio to the DER; each worker's private memory (RssAnon)
   and its view of the shared file (RssShmem) after serving every answer.
2. Working set: one data plane process pinned to core 0 serving N answers, N from
   1,000 to 1,000,000, wrk on core 1 asking for them at random over 64 keep-alive
   connections; nginx (one worker, core 0) serving the same N answers as files.

    .venv/bin/python loadtests/bench_memory.py [--max 1000000] [--write docs/benchmarks.md]

The data plane here is revocd's own (DataPlane + HttpServer with the GET reactor, as
`revocd serve` runs it), with the answers written into the shared cache directly
rather than fetched from a store: what is measured is what a host holds and serves
once warm. This process plays the cache's owner (it beats the heartbeat).
"""

import argparse
import base64
import multiprocessing
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_scaling import wrk as wrk_stats
from benchdoc import cpu_model, replace_section
from nginx_conf import main_conf

from responder.answers.arena import ALIGN, RECORD, Arena

ANSWER_BYTES = 800


def path_of(n: int) -> str:
    """A URL as long as a real OCSP GET's: the base64 (URL-safe here, so nginx can serve
    it as a file name) of a request with one SHA-1 CertID, in a directory per 1,000."""
    serial = (0x4E5A << 64 | n).to_bytes(10, "big")
    cert_id = (
        b"\x30\x2f\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00"
        + b"\x04\x14"
        + b"N" * 20
        + b"\x04\x14"
        + b"K" * 20
        + b"\x02\x0a"
        + serial
    )
    request = b"\x30\x3b\x30\x39\x30\x37\x30\x35" + cert_id
    return f"/a/{n // 1000}/" + base64.urlsafe_b64encode(request).decode()


def der_of(n: int) -> bytes:
    return n.to_bytes(8, "big") * (ANSWER_BYTES // 8)


def status_kib(pid: int | str = "self") -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssShmem"):
            out[name] = int(value.split()[0])
    return out


def ring_for(count: int) -> int:
    """A ring that holds `count` answers with a little to spare."""
    record = (RECORD.size + len(path_of(count)) + ANSWER_BYTES + ALIGN - 1) // ALIGN * ALIGN
    return int(max(count, 64) * record * 1.01)


def fill_arena(path: Path, count: int) -> Arena:
    arena = Arena.create(path, ring_for(count))
    now = int(time.time())
    for n in range(count):
        url = path_of(n).encode()
        stored = arena.put(
            url, arena.snapshot(n), der_of(n), now - 300, now + 4 * 86400, now + 2 * 86400, 0
        )
        assert stored
    return arena


class Owner:
    """The cache owner's heartbeat, as revocd serve's main process beats it."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            self.arena.beat()
            self.done.wait(0.5)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def worker(port: int, arena_path: str, cpu: int | None, report: Any, stop: Any) -> None:
    """A data plane serving from the shared cache on the shared port until `stop` is
    set; reports its memory once listening and again when stopped."""
    import trio

    from responder.answers.cache import AnswerCache
    from responder.dataplane.app import DataPlane, http_server
    from responder.http.reactor import ArenaReader

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    arena = Arena.attach(Path(arena_path))
    plane = DataPlane(None, cache=AnswerCache(1), arena=ArenaReader(arena))  # type: ignore[arg-type]

    async def main() -> None:
        server = http_server(plane)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(4096)
        sock.setblocking(False)
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, [listener])
            report.put(("up", os.getpid(), status_kib()))
            while not stop.is_set():
                await trio.sleep(0.2)
            report.put(("down", os.getpid(), status_kib()))
            nursery.cancel_scope.cancel()

    trio.run(main)


def start_workers(
    arena_path: Path, workers: int, cpus: list[int | None]
) -> tuple[Any, Any, list[Any], dict[int, Any], int]:
    ctx = multiprocessing.get_context("spawn")
    report, stop = ctx.Queue(), ctx.Event()
    port = free_port()
    procs = [
        ctx.Process(target=worker, args=(port, str(arena_path), cpus[i], report, stop))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    up = {}
    for _ in procs:
        _, pid, mem = report.get(timeout=600)
        up[pid] = mem
    wait_port(port)
    return stop, report, procs, up, port


def stop_workers(stop: Any, report: Any, procs: list[Any]) -> dict[int, Any]:
    stop.set()
    down = {}
    for _ in procs:
        _, pid, mem = report.get(timeout=60)
        down[pid] = mem
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    return down


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


def paths_script(tmp: Path, count: int, sequential: bool = False) -> Path:
    """wrk asking for `count` answers at random, or each in turn (`sequential`)."""
    script = tmp / f"paths-{count}-{int(sequential)}.lua"
    pick = (
        "i = (i or 0) % #paths + 1; return wrk.format('GET', paths[i])"
        if sequential
        else "return wrk.format('GET', paths[math.random(#paths)])"
    )
    script.write_text(
        "paths = {"
        + ",".join(f'"{path_of(n)}"' for n in range(count))
        + "}\nrequest = function() "
        + pick
        + " end\n"
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

    # 1. memory: one shared cache, two workers serving every answer from it
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        path = Path(d) / "answers.arena"
        started = time.monotonic()
        arena = fill_arena(path, top)
        fill_seconds = time.monotonic() - started
        owner = Owner(arena)
        try:
            arena_bytes = os.stat(path).st_blocks * 512
            stop, report, procs, up, port = start_workers(path, 2, [None, None])
            # touch every answer through the workers (each fresh connection lands on
            # one of them)
            script = paths_script(Path(d), top, sequential=True)
            wrk(f"http://127.0.0.1:{port}", max(4, top // 60_000), 64, script)
            down = stop_workers(stop, report, procs)
        finally:
            owner.stop()
            arena.close()
    memory = [(pid, up[pid], down[pid]) for pid in up]

    # 2. throughput and p99 by number of distinct answers
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        root = tmp / "nginx"
        for n in range(top):
            target = root / "answers" / path_of(n).lstrip("/")
            if n % 1000 == 0:
                target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(der_of(n))
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
                arena = fill_arena(Path("/dev/shm") / f"bench-{os.getpid()}.arena", count)
                owner = Owner(arena)
                stop, report, procs, _, port = start_workers(arena.path, 1, [0])
                try:
                    wrk(f"http://127.0.0.1:{port}", 2, 64, script)  # warm-up
                    ours = wrk(f"http://127.0.0.1:{port}", args.seconds, 64, script)
                finally:
                    stop_workers(stop, report, procs)
                    owner.stop()
                    arena.remove()
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
        "revocd's (DataPlane + HttpServer with the GET reactor, as `revocd serve` runs "
        "it) serving from the shared answer cache, filled directly; URLs of "
        f"{len(path_of(top))} bytes, as long as a real OCSP GET's.",
        "",
        f"Memory: one shared cache holding {top:,} answers (filled in {fill_seconds:.0f} s "
        "by one writer), two data plane processes serving from it; every answer was asked "
        "for through them before their memory was read:",
        "",
        "| what | MiB | bytes per answer | per answer / DER |",
        "|---|---:|---:|---:|",
        f"| the shared cache (the whole file: records, index, counters) | "
        f"{arena_bytes / 2**20:,.0f} | {arena_bytes / top:,.0f} | "
        f"{arena_bytes / top / ANSWER_BYTES:.2f}x |",
    ]
    for pid, before, after in memory:
        private = (after["RssAnon"] - before["RssAnon"]) * 1024
        lines.append(
            f"| worker {pid}: private memory (RssAnon) {before['RssAnon'] / 1024:,.0f} → "
            f"{after['RssAnon'] / 1024:,.0f}; its view of the shared file (RssShmem) "
            f"{after['RssShmem'] / 1024:,.0f} | {private / 2**20:,.0f} | "
            f"{private / top:,.0f} | {private / top / ANSWER_BYTES:.2f}x |"
        )
    per_host = arena_bytes + sum(
        (after["RssAnon"] - before["RssAnon"]) * 1024 for _, before, after in memory
    )
    lines += [
        "",
        f"- the host: {per_host / top:,.0f} bytes per answer, "
        f"**{per_host / top / ANSWER_BYTES:.2f}x** the DER for both workers together "
        "(goal: one copy per host at ≤ 1.3x); the workers' RssShmem is the same pages "
        "counted in each, not a copy",
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
