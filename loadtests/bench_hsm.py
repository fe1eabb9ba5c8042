"""HSM signing through revocd's batcher against a raw SoftHSM2 loop, and pre-signing at scale.

1. Raw: one thread calling C_Sign in a loop on a SoftHSM2 ECDSA P-256 key.
2. Batcher: 512 trio tasks signing concurrently through Pkcs11Signer (one owner thread,
   batched hand-off), in one process and in two processes (each its own owner thread
   and session on the same token).
3. Pre-signing: a full sweep over N certificates with a software P-256 key against the
   embedded store (sign + version-guarded batch writes).

    .venv/bin/python loadtests/bench_hsm.py [--seconds 5] [--presign N] [--write FILE]
"""

import argparse
import datetime as dt
import hashlib
import multiprocessing
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import trio
from benchdoc import replace_section

from responder.answers.issuers import IssuerRuntime
from responder.config import IssuerConfig
from responder.ingest import Ingestor
from responder.policy import Policy
from responder.presign import Presigner, PresignSettings
from responder.signing import ResponderIdentity, SoftwareSigner
from responder.signing.pkcs11 import Pkcs11KeyRef, Pkcs11Signer, generate_key
from responder.store import Store, ValkeyProcess
from responder.testing import pki

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
PIN = "1234"


def make_token(directory: Path) -> Pkcs11KeyRef:
    conf = directory / "softhsm2.conf"
    (directory / "tokens").mkdir(parents=True)
    conf.write_text(
        f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            PIN,
            "--so-pin",
            "5678",
        ],
        check=True,
        capture_output=True,
    )
    (directory / "pin").write_text(PIN)
    module = next(m for m in MODULES if Path(m).exists())
    ref = Pkcs11KeyRef(module, key_label="bench", token_label="bench", pin_file=directory / "pin")
    generate_key(ref, "ec-p256")
    return ref


def raw_rate(ref: Pkcs11KeyRef, seconds: float) -> float:
    """C_Sign in a loop from one thread, hashing in Python as revocd does."""
    import pkcs11
    from pkcs11 import Mechanism, ObjectClass

    token = pkcs11.lib(ref.module).get_token(token_label=ref.token_label)
    with token.open(user_pin=PIN) as session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=ref.key_label)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            key.sign(hashlib.sha256(n.to_bytes(8, "big")).digest(), mechanism=Mechanism.ECDSA)
            n += 1
        return n / (time.perf_counter() - t0)


def batcher_rate(ref: Pkcs11KeyRef, seconds: float, tasks: int = 512) -> float:
    signer = Pkcs11Signer(ref, queue_size=tasks * 2).start()
    count = 0

    async def worker(deadline: float) -> None:
        nonlocal count
        i = 0
        while trio.current_time() < deadline:
            await signer.sign(i.to_bytes(8, "big"))
            i += 1
            count += 1

    async def main() -> float:
        t0 = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(worker, t0 + seconds)
        return count / (trio.current_time() - t0)

    try:
        return trio.run(main)
    finally:
        signer.close()


def _process(ref: Pkcs11KeyRef, seconds: float, out: "multiprocessing.Queue[float]") -> None:
    out.put(batcher_rate(ref, seconds))


def multi_process_rate(ref: Pkcs11KeyRef, seconds: float, processes: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[float] = ctx.Queue()
    procs = [ctx.Process(target=_process, args=(ref, seconds, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=seconds + 120) for _ in procs)
    for p in procs:
        p.join()
    return total


def presign_rate(directory: Path, certs: int) -> tuple[float, int]:
    root = pki.make_root("bench root")
    issuer = pki.make_intermediate("bench issuer", root)
    responder = pki.make_responder(issuer)
    config = IssuerConfig("bench", directory, Policy.TLS, partitions=64)
    runtime = IssuerRuntime(
        config, ResponderIdentity(SoftwareSigner(responder.key), issuer.cert, responder.cert)
    )
    server = ValkeyProcess(directory / "valkey").start()

    async def main() -> tuple[float, int]:
        async with Store.open(server.url) as store:
            await store.register_issuers([config])
            ingest = Ingestor(store, {"bench": config})
            for start in range(0, certs, 10_000):
                await ingest.submit(
                    [
                        {
                            "type": "issued",
                            "issuer": "bench",
                            "serial": format(0x100000 + i, "x"),
                            "not_after": "2030-01-01T00:00:00Z",
                        }
                        for i in range(start, min(certs, start + 10_000))
                    ]
                )
            presigner = Presigner(store, [runtime], PresignSettings(batch=512, concurrency=8))
            t0 = time.perf_counter()
            stored = await presigner.sweep()
            return time.perf_counter() - t0, stored

    try:
        return trio.run(main)
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--presign", type=int, default=1_000_000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    if shutil.which("softhsm2-util") is None:
        print("softhsm2 is required (make sysdeps)")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="revocd-hsm-"))
    try:
        ref = make_token(tmp / "hsm")
        rows = []
        for _ in range(2):  # alternate: raw, batcher, two processes
            rows.append(("raw SoftHSM2 loop, one thread", raw_rate(ref, args.seconds)))
            rows.append(("revocd batcher, one process", batcher_rate(ref, args.seconds)))
            rows.append(("revocd batcher, two processes", multi_process_rate(ref, args.seconds, 2)))
            for name, value in rows[-3:]:
                print(f"{name:34s} {value:>10,.0f} signatures/s", flush=True)
        best = {}
        for name, value in rows:
            best[name] = max(best.get(name, 0.0), value)
        seconds, stored = presign_rate(tmp / "presign", args.presign)
        print(f"pre-signed {stored:,} answers in {seconds:.1f} s ({stored / seconds:,.0f}/s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    raw = best["raw SoftHSM2 loop, one thread"]
    one = best["revocd batcher, one process"]
    two = best["revocd batcher, two processes"]
    section = [
        "## HSM signing through the batcher, and pre-signing",
        "",
        f"Measured {dt.date.today().isoformat()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, SoftHSM2 (Debian) with an ECDSA P-256 key; 512 concurrent "
        "trio tasks per process for the batcher; two alternating rounds of "
        f"{args.seconds:.0f} s, best of each.",
        "",
        "Command: `.venv/bin/python loadtests/bench_hsm.py --write docs/benchmarks.md` "
        "(part of `make bench`).",
        "",
        "| signer | signatures/s |",
        "|---|---:|",
        *(f"| {name} | {value:,.0f} |" for name, value in best.items()),
        "",
        f"- batcher, one process: **{one / raw:.2f}** of the raw loop (goal ≥ 0.8)",
        f"- two processes: **{two / raw:.2f}x** the raw one-thread loop "
        f"({two / one:.2f}x one process; this machine has {os.cpu_count()} cores)",
        f"- pre-signing {stored:,} answers (software P-256 key, embedded store, batch writes): "
        f"{seconds:.1f} s, {stored / seconds:,.0f} answers/s",
    ]
    if args.write:
        replace_section(args.write, "bench_hsm", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
