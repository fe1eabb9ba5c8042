"""Throughput of the data plane against its anchors, side by side in one run.

1. Pre-signed GET answers: revocd (one worker) vs nginx serving the same bytes as static
   files, both pinned to core 0, wrk pinned to core 1, keep-alive connections, requests
   spread over 1,000 certificates.
2. Live-signed POSTs carrying a nonce (so every answer is signed now): revocd vs
   `openssl ocsp` as a responder, driven by ApacheBench with a new connection per request
   for both (openssl ocsp closes after each answer), plus the raw ECDSA P-256 sign rate.
   wrk is not used here: the idle connection it opens to probe a server wedges a
   single-process `openssl ocsp` for good.

    .venv/bin/python loadtests/bench_http.py [--seconds 10] [--write docs/benchmarks.md]
"""

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchdoc import cpu_model, replace_section
from nginx_conf import main_conf
from ocsp_requests import get_path, ocsp_request
from revocd_process import register_issued

from responder.ocsp import HashAlgorithm, IssuerHashes, encode_cert_id
from responder.signing import SoftwareSigner
from responder.store.embedded import free_port

NGINX_SERVER = """
    server {{
        listen 127.0.0.1:{port};
        root {dir}/answers;
        default_type application/ocsp-response;
        location / {{ add_header Cache-Control "max-age=300, public, no-transform"; }}
    }}
"""


def wrk(url: str, seconds: int, connections: int, script: Path) -> float:
    args = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not match:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    if errors:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return float(match.group(1))


def ab(url: str, seconds: int, concurrency: int, body: Path, keep_alive: bool = False) -> float:
    """Requests/s with ApacheBench. A fixed request count sized by a short calibration run,
    rather than ab's time limit, which abandons connections mid-request."""
    rate = _ab(url, 500, concurrency, body, keep_alive, 120)
    count = max(1000, int(rate * seconds))
    return _ab(url, count, concurrency, body, keep_alive, seconds * 10 + 120)


def _ab(
    url: str, count: int, concurrency: int, body: Path, keep_alive: bool, timeout: int
) -> float:
    args = [
        "taskset",
        "-c",
        "1",
        "ab",
        "-q",
        "-n",
        str(count),
        "-c",
        str(concurrency),
        "-p",
        str(body),
        "-T",
        "application/ocsp-request",
    ]
    if keep_alive:
        args.append("-k")
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=timeout)
    out = done.stdout + done.stderr
    match = re.search(r"Requests per second:\s+([\d.]+)", out)
    # ab counts answers of another length as "failed"; ECDSA signatures vary in length,
    # so only connection, receive and exception failures count.
    failed = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: \d+, Exceptions: (\d+)\)", out)
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    if not match or (failed and failed.groups() != ("0", "0", "0")) or non2xx:
        raise RuntimeError(f"ab output not understood or errors:\n{out}")
    if keep_alive and f"Keep-Alive requests:    {count}" not in out:
        raise RuntimeError(f"ab did not keep connections alive:\n{out}")
    return float(match.group(1))


def post_counts(control: int) -> tuple[float, float]:
    """(tryLater answers, all POST answers) so far, from revocd's /metrics: a live
    signer at capacity sheds with tryLater by design (server.limits.live_sign_*), and a
    throughput figure must say how much of it was that."""
    conn = http.client.HTTPConnection("127.0.0.1", control, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    shed = total = 0.0
    for line in text.splitlines():
        if line.startswith('revocd_ocsp_requests_total{method="POST"'):
            value = float(line.rsplit(" ", 1)[1])
            total += value
            if 'result="try_later"' in line:
                shed += value
    return shed, total


def wait_ocsp(port: int, body: bytes, timeout: float = 60) -> None:
    """Wait until a full OCSP POST is answered (a bare connect would wedge openssl ocsp)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", "/", body, {"Content-Type": "application/ocsp-request"})
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no OCSP answer on {port}")


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--certs", type=int, default=1000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    for tool in ("wrk", "ab", "nginx", "taskset", "openssl"):
        if shutil.which(tool) is None:
            print(f"{tool} is required (make sysdeps)", file=sys.stderr)
            return 1
    tmp = Path(tempfile.mkdtemp(prefix="revocd-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        return run(args, tmp, procs)
    finally:
        for proc in procs:  # each in its own session: stop children (openssl -multi) too
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path, procs: list[subprocess.Popen[bytes]]) -> int:
    port, control = free_port(), free_port()
    demo_dir = tmp / "demo"
    log = (tmp / "revocd.log").open("wb")
    revocd = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            "-m",
            "responder",
            "--log-level",
            "WARNING",
            "demo",
            "--dir",
            str(demo_dir),
            "--port",
            str(port),
            "--control-port",
            str(control),
            "--certs",
            "10",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    procs.append(revocd)
    deadline = time.monotonic() + 120
    while b"ready" not in (tmp / "revocd.log").read_bytes():
        if revocd.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((tmp / "revocd.log").read_text())
        time.sleep(0.2)

    # Register the benchmark's certificates through the control plane, as a CA would.
    from cryptography import x509

    issuer = x509.load_pem_x509_certificate((demo_dir / "issuer.pem").read_bytes())
    hashes = IssuerHashes.from_certificate(issuer)
    serials = [0x10000000 + i for i in range(args.certs)]
    register_issued(demo_dir, control, serials)

    # The same answers as files for nginx; fetching them once also warms revocd's cache.
    answers = tmp / "nginx" / "answers"
    answers.mkdir(parents=True)
    paths = []
    data_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for serial in serials:
        cid = encode_cert_id(
            HashAlgorithm.SHA1, hashes.name_hashes[0], hashes.key_hashes[0], serial
        )
        name = get_path(ocsp_request(cid))[1:]
        data_conn.request("GET", "/" + name)
        resp = data_conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and len(body) > 100
        (answers / name).write_bytes(body)
        paths.append("/" + name)
    paths_lua = tmp / "get.lua"
    paths_lua.write_text(
        "paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n"
        "request = function() return wrk.format('GET', paths[math.random(#paths)]) end\n"
    )

    nginx_port = free_port()
    nginx_dir = tmp / "nginx"
    (nginx_dir / "nginx.conf").write_text(
        main_conf(
            nginx_dir,
            NGINX_SERVER.format(dir=nginx_dir, port=nginx_port),
            worker_connections=4096,
            error_log="warn",
        )
    )
    procs.append(
        subprocess.Popen(
            [
                "taskset",
                "-c",
                "0",
                "nginx",
                "-c",
                str(nginx_dir / "nginx.conf"),
                "-p",
                str(nginx_dir),
            ],
            start_new_session=True,
        )
    )
    wait_port(nginx_port)

    # Live signing: POST with a nonce, which revocd echoes and so must sign now.
    cid = encode_cert_id(
        HashAlgorithm.SHA1, hashes.name_hashes[0], hashes.key_hashes[0], serials[0]
    )
    post_body = tmp / "post.der"
    post_body.write_bytes(ocsp_request(cid, os.urandom(16)))
    ossl_dir = tmp / "openssl"
    ossl_dir.mkdir()
    expiry = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() + 90 * 86400))
    (ossl_dir / "index.txt").write_text(
        "".join(f"V\t{expiry}\t\t{s:X}\tunknown\t/CN=bench{s}\n" for s in serials)
    )

    def start_openssl() -> tuple[subprocess.Popen[bytes], int]:
        """A fresh `openssl ocsp` per round: one stray connection wedges it for good."""
        ossl_port = free_port()
        proc = subprocess.Popen(
            [
                "taskset",
                "-c",
                "0",
                "openssl",
                "ocsp",
                "-index",
                str(ossl_dir / "index.txt"),
                "-port",
                str(ossl_port),
                "-rsigner",
                str(demo_dir / "responder.pem"),
                "-rkey",
                str(demo_dir / "responder.key"),
                "-CA",
                str(demo_dir / "issuer.pem"),
                "-ndays",
                "4",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        procs.append(proc)
        wait_ocsp(ossl_port, post_body.read_bytes())
        return proc, ossl_port

    ceiling_port = free_port()
    answer_size = len((answers / paths[0].lstrip("/")).read_bytes())
    procs.append(
        subprocess.Popen(
            [
                "taskset",
                "-c",
                "0",
                sys.executable,
                str(Path(__file__).with_name("stack_ceiling.py")),
                str(ceiling_port),
                str(answer_size),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    )
    wait_port(ceiling_port)

    results: dict[str, list[float]] = {
        k: []
        for k in (
            "revocd GET pre-signed",
            "nginx static GET",
            "trio+httptools fixed bytes, keep-alive",
            "revocd POST live",
            "revocd POST live, keep-alive",
            "openssl ocsp POST",
            "trio+httptools fixed bytes, new connection each",
        )
    }
    shed: dict[str, list[float]] = {"revocd POST live": [], "revocd POST live, keep-alive": []}

    def shed_share(before: tuple[float, float], after: tuple[float, float]) -> float:
        answered = after[1] - before[1]
        return (after[0] - before[0]) / answered if answered else 0.0

    for _ in range(args.rounds):
        results["revocd GET pre-signed"].append(
            wrk(f"http://127.0.0.1:{port}", args.seconds, 64, paths_lua)
        )
        results["nginx static GET"].append(
            wrk(f"http://127.0.0.1:{nginx_port}", args.seconds, 64, paths_lua)
        )
        results["trio+httptools fixed bytes, keep-alive"].append(
            wrk(f"http://127.0.0.1:{ceiling_port}", args.seconds, 64, paths_lua)
        )
        before = post_counts(control)
        results["revocd POST live"].append(
            ab(f"http://127.0.0.1:{port}/", args.seconds, 16, post_body)
        )
        shed["revocd POST live"].append(shed_share(before, post_counts(control)))
        results["trio+httptools fixed bytes, new connection each"].append(
            ab(f"http://127.0.0.1:{ceiling_port}/", args.seconds, 16, post_body)
        )
        before = post_counts(control)
        results["revocd POST live, keep-alive"].append(
            ab(f"http://127.0.0.1:{port}/", args.seconds, 16, post_body, keep_alive=True)
        )
        shed["revocd POST live, keep-alive"].append(shed_share(before, post_counts(control)))
        ossl, ossl_port = start_openssl()
        results["openssl ocsp POST"].append(
            ab(f"http://127.0.0.1:{ossl_port}/", args.seconds, 16, post_body)
        )
        os.killpg(ossl.pid, signal.SIGKILL)
        ossl.wait()
        for name, values in results.items():
            print(f"{name:28s} {values[-1]:>10,.0f} req/s", flush=True)

    signer = SoftwareSigner.from_pem_file(demo_dir / "responder.key")
    payload = hashlib.sha256(b"x").digest() * 10
    os.sched_setaffinity(0, {0})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 3:
        signer.sign_sync(payload)
        n += 1
    sign_rate = n / (time.perf_counter() - t0)
    # Does cryptography let go of the GIL while it signs? Two threads of one process,
    # on both cores (nothing else runs now): if so, a process can sign on more cores.
    os.sched_setaffinity(0, {0, 1})
    counts = [0, 0]

    def sign_for(i: int, seconds: float = 3.0) -> None:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            signer.sign_sync(payload)
            counts[i] += 1

    threads = [threading.Thread(target=sign_for, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    two_threads = sum(counts) / 3.0
    best = {k: max(v) for k, v in results.items()}
    get_ratio = best["revocd GET pre-signed"] / best["nginx static GET"]
    live_ratio = best["revocd POST live"] / best["openssl ocsp POST"]
    sign_ratio = best["revocd POST live"] / sign_rate
    ka_ratio = best["revocd POST live, keep-alive"] / best["openssl ocsp POST"]
    ka_sign_ratio = best["revocd POST live, keep-alive"] / sign_rate
    print(
        f"GET: {get_ratio:.2f}x nginx; live POST: {live_ratio:.2f}x openssl ocsp, "
        f"{sign_ratio:.2f} of the raw sign rate ({sign_rate:,.0f}/s)"
    )
    cpu = cpu_model()
    section = [
        "## Data plane throughput (pre-signed GET vs nginx, live POST vs openssl ocsp)",
        "",
        f"Measured {dt.date.today().isoformat()} on {cpu}, "
        f"Python {platform.python_version()}. Every server (revocd demo with one data plane "
        "worker, nginx with one worker, `openssl ocsp`) pinned to core 0; the load generator "
        "pinned to core 1. GET: wrk `-t1`, 64 keep-alive connections, requests spread over "
        f"{args.certs} certificates whose answers nginx serves as static files with the same "
        "bytes. POST: ApacheBench `ab -c 16`, a new connection per request for both "
        "(openssl ocsp closes after every answer; wrk is not used because its idle probe "
        "connection wedges a single-process openssl ocsp); revocd is measured with "
        "keep-alive too (`ab -k`), which openssl ocsp cannot do; the request carries a "
        "nonce, so every answer is signed now (ECDSA P-256 delegated responder). "
        f"{args.rounds} "
        f"alternating rounds of {args.seconds} s; best of each.",
        "",
        "Command: `.venv/bin/python loadtests/bench_http.py --write docs/benchmarks.md` "
        "(part of `make bench`).",
        "",
        "| server | req/s (each round) | best |",
        "|---|---|---:|",
        *(
            f"| {name} | {', '.join(f'{v:,.0f}' for v in values)} | {max(values):,.0f} |"
            for name, values in results.items()
        ),
        f"| raw ECDSA P-256 signing, one core | | {sign_rate:,.0f} |",
        f"| raw ECDSA P-256 signing, two threads of one process, two cores | | "
        f"{two_threads:,.0f} |",
        "",
        f"- pre-signed GET: revocd reaches **{get_ratio:.2f}x** nginx (goal ≥ 1.0x)",
        f"- live-signed POST with a nonce, keep-alive: **{ka_sign_ratio:.2f}** of the raw "
        f"sign rate (goal ≥ 0.6); a new connection each: **{live_ratio:.2f}x** `openssl "
        f"ocsp` (goal ≥ 1.0x) and {sign_ratio:.2f} of the sign rate; keep-alive is "
        f"{ka_ratio:.2f}x openssl",
        f"- cryptography releases the GIL while it signs: two threads of one process sign "
        f"{two_threads / sign_rate:.2f}x as fast as one. revocd signs on more cores with "
        "`server.workers` (a process per core, each with its reactor; not measured here, "
        "where the load generator has the other core); within one process revocd signs "
        "inline on the loop's core: a signing thread pool was not built",
        "- of revocd's POST answers, tryLater (live-signing admission shedding the excess "
        "of 16 clients asking as fast as they can, by design): "
        + "; ".join(
            f"{name.removeprefix('revocd POST live').strip(', ') or 'new connection each'} "
            + ", ".join(f"{v:.0%}" for v in values)
            for name, values in shed.items()
        ),
        f"- the stack itself (trio + httptools returning fixed bytes, no OCSP work) reaches "
        f"{best['trio+httptools fixed bytes, keep-alive'] / best['nginx static GET']:.2f}x "
        "nginx with keep-alive and "
        f"{best['trio+httptools fixed bytes, new connection each']:,.0f} req/s with a new "
        "connection per request. revocd answers past that stack with the compiled "
        "reactor: GETs from the shared answer cache (no trio task and no Python object per "
        "hit), and POSTs whose status records are in memory with one Python call each "
        "(decode, sign, headers), no task; the rest (first requests for a serial, shed "
        "ones) still take the stack. Per keep-alive POST the profile (py-spy, demo under "
        "ab -k) is about a third signing, a sixth the reactor's reads and writes, a sixth "
        "the inline answer's Python, and a fifth the shed requests' full path",
    ]
    if args.write:
        replace_section(args.write, "bench_http", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
