"""Mass-revocation drill: what a CA key compromise or a misissuance incident asks of revocd.

Starts `revocd demo` with enough certificates, pushes N revocations for its one issuer
through the control plane (batches of 10,000, as a CA would), then checks every one of
them: an OCSP GET for each serial must answer `revoked`, and the published CRL must list
every serial (and verify with `openssl crl`). Prints and, with --write, records in
docs/benchmarks.md how long each step took.

With --ledger it then runs `revocd probe --once` (which fetches every recent revocation
through the public URL) and `revocd report`, and records how complete the propagation
ledger is for the pushed serials and each step's p50/p99 (section "drill_ledger").

    python loadtests/drill_mass_revocation.py --revocations 100000 --write docs/benchmarks.md
    python loadtests/drill_mass_revocation.py --revocations 10000 --ledger \
        --write docs/benchmarks.md
"""

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography import x509
from cryptography.x509 import ocsp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests import revocd_process
from loadtests.benchdoc import replace_section
from loadtests.ocsp_requests import get_path, ocsp_request
from responder.ocsp import HashAlgorithm, IssuerHashes, encode_cert_id
from responder.store.embedded import free_port

ISSUER = "demo"
BATCH = 10_000
CHECK_THREADS = 16


def start_demo(directory: Path, certs: int) -> tuple[subprocess.Popen[bytes], int, int]:
    port, control = free_port(), free_port()
    directory.mkdir(parents=True, exist_ok=True)
    args = ["demo", "--dir", str(directory), "--port", str(port)]
    args += ["--control-port", str(control), "--certs", str(certs)]
    proc = revocd_process.start(
        args, directory.parent / "demo.log", "revocd demo ready", None, timeout=600
    )
    return proc, port, control


# A batch answered 503 is sent again, as docs/api/openapi.yaml tells a CA's client to:
# its `failed` events were not acknowledged (the store did not answer in time), and a
# resend of the whole batch is safe, what had landed being `unchanged`.
RESENDS = 5


def push_revocations(
    control: int, token: str, serials: list[int]
) -> tuple[float, list[float], int]:
    revoked_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    conn = http.client.HTTPConnection("127.0.0.1", control, timeout=120)
    batch_seconds = []
    resent = 0
    started = time.monotonic()
    for start in range(0, len(serials), BATCH):
        events = [
            {
                "type": "revoked",
                "issuer": ISSUER,
                "serial": format(s, "x"),
                "revoked_at": revoked_at,
                "reason": "keyCompromise",
            }
            for s in serials[start : start + BATCH]
        ]
        t0 = time.monotonic()
        landed = 0
        for attempt in range(RESENDS + 1):
            conn.request(
                "POST",
                "/v1/events",
                json.dumps({"events": events}),
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            body = json.loads(resp.read())
            counts = body.get("counts") or {}
            landed = counts.get("applied", 0) + counts.get("unchanged", 0)
            if resp.status != 503 or attempt == RESENDS:
                break
            resent += 1
            print(f"batch at {start}: 503 {counts}; sent again", file=sys.stderr, flush=True)
            time.sleep(float(resp.getheader("retry-after") or "1"))
        batch_seconds.append(time.monotonic() - t0)
        if resp.status != 200 or landed != len(events) or counts.get("rejected"):
            raise SystemExit(f"batch at {start} not applied: {resp.status} {body.get('counts')}")
    conn.close()
    return time.monotonic() - started, batch_seconds, resent


def check_ocsp(port: int, hashes: IssuerHashes, serials: list[int]) -> dict[str, int]:
    def worker(chunk: list[int]) -> dict[str, int]:
        counts: dict[str, int] = {}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for serial in chunk:
            cid = encode_cert_id(
                HashAlgorithm.SHA1,
                hashes.name_hashes[HashAlgorithm.SHA1],
                hashes.key_hashes[HashAlgorithm.SHA1],
                serial,
            )
            conn.request("GET", get_path(ocsp_request(cid)))
            resp = conn.getresponse()
            parsed = ocsp.load_der_ocsp_response(resp.read())
            if parsed.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
                key = parsed.response_status.name.lower()
            elif parsed.serial_number != serial:
                key = "wrong_serial"
            else:
                key = parsed.certificate_status.name.lower()
            counts[key] = counts.get(key, 0) + 1
        conn.close()
        return counts

    size = (len(serials) + CHECK_THREADS - 1) // CHECK_THREADS
    chunks = [serials[i : i + size] for i in range(0, len(serials), size)]
    total: dict[str, int] = {}
    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        for counts in pool.map(worker, chunks):
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
    return total


def fetch_crl(port: int) -> bytes | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/crl/{ISSUER}.crl")
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return body if resp.status == 200 else None


def presigned_changes(control: int) -> float:
    """revocd_presigned_total{why="change"} from the control plane's /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", control, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("revocd_presigned_total{") and 'why="change"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


class Watch(threading.Thread):
    """Polls, beside the OCSP check, for the moments the work behind it is done: every
    revoked answer pre-signed again, and the CRL listing every serial."""

    def __init__(self, port: int, control: int, serials: set[int], since: float) -> None:
        super().__init__(daemon=True)
        self.port, self.control, self.serials, self.since = port, control, serials, since
        self.baseline = presigned_changes(control)
        self.presigned_after: float | None = None
        self.crl_after: float | None = None
        self.crl_der = b""
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and (self.crl_after is None or self.presigned_after is None):
            now = time.monotonic() - self.since
            if self.presigned_after is None and presigned_changes(
                self.control
            ) - self.baseline >= len(self.serials):
                self.presigned_after = now
            if self.crl_after is None:
                der = fetch_crl(self.port)
                if der is not None:
                    listed = {entry.serial_number for entry in x509.load_der_x509_crl(der)}
                    if self.serials <= listed:
                        self.crl_after, self.crl_der = now, der
            self.stop.wait(1.0)


def revocd_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "responder", *args], capture_output=True, text=True, timeout=timeout
    )


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def ledger_figures(directory: Path, targets: list[int]) -> dict[str, object]:
    """Probe once, report, and measure the ledger of the pushed serials."""
    config = str(directory / "revocd.toml")
    t0 = time.monotonic()
    probe = revocd_cli("probe", "-c", config, "--once")
    probe_seconds = time.monotonic() - t0
    probed = json.loads(probe.stdout) if probe.stdout.strip() else {}
    t0 = time.monotonic()
    report_path = directory / "report.json"
    done = revocd_cli("report", "-c", config, "--since", "1d", "-o", str(report_path))
    report_seconds = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"revocd report failed: {done.stderr[-2000:]}")
    report = json.loads(report_path.read_text())
    wanted = {format(s, "x") for s in targets}
    mine = [t for t in report["timelines"] if t["serial"] in wanted]
    steps: dict[str, list[float]] = {}
    for t in mine:
        seen: dict[str, float] = {}
        for step in t["steps"]:
            name = step["step"]
            kind = name.split(":")[0] if name.startswith(("crl:", "purge:")) else name
            seen[kind] = min(seen.get(kind, step["seconds"]), step["seconds"])
        for kind, seconds in seen.items():
            steps.setdefault(kind, []).append(seconds)
    return {
        "ledgers": len(mine),
        "probe_seconds": round(probe_seconds, 1),
        "probe_problems": len(probed.get("problems", [])),
        "probe_seen_revoked": probed.get("revocations_seen_revoked"),
        "report_seconds": round(report_seconds, 1),
        "br_ocsp_within_24h": sum(1 for t in mine if t["br_ocsp_within_24h"]),
        "br_crl_within_24h": sum(1 for t in mine if t["br_crl_within_24h"]),
        "audit_ok": report["audit_chain"]["ok"],
        "steps": {
            kind: {
                "count": len(v),
                "p50_seconds": round(percentile(v, 50), 3),
                "p99_seconds": round(percentile(v, 99), 3),
                "max_seconds": round(max(v), 3),
            }
            for kind, v in sorted(steps.items())
        },
    }


def drill(revocations: int, directory: Path, ledger: bool = False) -> dict[str, object]:
    certs = int(revocations / 0.95) + 100  # the demo itself revokes about 5%
    t_start = time.monotonic()
    proc, port, control = start_demo(directory, certs)
    setup = time.monotonic() - t_start
    try:
        rows = (directory / "serials.txt").read_text().split()
        good = [int(rows[i], 16) for i in range(0, len(rows), 2) if rows[i + 1] == "good"]
        targets = good[1 : revocations + 1]  # keep the demo's "good" sample good
        assert len(targets) == revocations, f"only {len(targets)} good certificates"
        token = (directory / "control-token").read_text().strip()
        issuer = x509.load_pem_x509_certificate((directory / "issuer.pem").read_bytes())
        hashes = IssuerHashes.from_certificate(issuer)

        pushed_at = time.monotonic()
        watch = Watch(port, control, set(targets), pushed_at)
        watch.start()
        push_seconds, batches, resent = push_revocations(control, token, targets)
        check_started = time.monotonic()
        ocsp_counts = check_ocsp(port, hashes, targets)
        ocsp_seconds = time.monotonic() - check_started
        all_revoked_after = time.monotonic() - pushed_at
        watch.join(600)
        watch.stop.set()
        if watch.crl_after is None:
            raise SystemExit("the CRL did not list every serial within 600 s")
        crl_seconds, crl_der = watch.crl_after, watch.crl_der
        # Once everything has settled (answers re-signed, CRL published): the same check
        # again, which shows how much of the first pass was the client itself.
        recheck_started = time.monotonic()
        recheck_counts = check_ocsp(port, hashes, targets)
        recheck_seconds = time.monotonic() - recheck_started
        crl_path = directory / "drill.crl"
        crl_path.write_bytes(crl_der)
        verified = subprocess.run(
            [
                "openssl",
                "crl",
                "-inform",
                "DER",
                "-in",
                str(crl_path),
                "-CAfile",
                str(directory / "issuer.pem"),
                "-noout",
            ],
            capture_output=True,
            text=True,
        )
        crl = x509.load_der_x509_crl(crl_der)
        extra = {"ledger": ledger_figures(directory, targets)} if ledger else {}
        return {
            **extra,
            "revocations": revocations,
            "certificates": certs,
            "demo_start_seconds": round(setup, 1),
            "push_seconds": round(push_seconds, 2),
            "push_events_per_second": round(revocations / push_seconds),
            "batch_p50_seconds": round(sorted(batches)[len(batches) // 2], 3),
            "batch_max_seconds": round(max(batches), 3),
            "batches_resent": resent,
            "ocsp_counts": ocsp_counts,
            "ocsp_check_seconds": round(ocsp_seconds, 1),
            "ocsp_all_revoked_after_seconds": round(all_revoked_after, 1),
            "ocsp_recheck_counts": recheck_counts,
            "ocsp_recheck_seconds": round(recheck_seconds, 1),
            "presigned_after_seconds": (
                None if watch.presigned_after is None else round(watch.presigned_after, 1)
            ),
            "crl_complete_after_seconds": round(crl_seconds, 1),
            "crl_entries": len(crl),
            "crl_bytes": len(crl_der),
            "crl_verified": "verify OK" in verified.stderr + verified.stdout,
            "crl_verify_output": (verified.stderr + verified.stdout).strip(),
        }
    finally:
        revocd_process.stop(proc)


def markdown(r: dict[str, object], command: str) -> list[str]:
    counts = r["ocsp_counts"]
    assert isinstance(counts, dict)
    return [
        "## Mass-revocation drill",
        "",
        f"`{command}` on {platform.machine()} ({os.cpu_count()} cores), demo on embedded "
        "defaults (software keys, embedded Valkey with appendfsync always). The drill pushes "
        f"{r['revocations']:,} revocations for one issuer through the control plane in batches "
        "of 10,000, then asks OCSP (GET, one request per serial, 16 keep-alive connections) for "
        "every one and waits for the published CRL to list every one.",
        "",
        "| step | result |",
        "|---|---|",
        f"| certificates registered and pre-signed by the demo | {r['certificates']:,} in "
        f"{r['demo_start_seconds']} s |",
        f"| {r['revocations']:,} revocations acknowledged (durable) | {r['push_seconds']} s "
        f"({r['push_events_per_second']:,} events/s; batch p50 {r['batch_p50_seconds']} s, "
        f"max {r['batch_max_seconds']} s; {r.get('batches_resent', 0)} resent after a 503) |",
        f"| OCSP answers checked | {sum(counts.values()):,} in {r['ocsp_check_seconds']} s: "
        + ", ".join(f"{v:,} {k}" for k, v in sorted(counts.items()))
        + " |",
        f"| every revoked answer pre-signed again, from the first push | "
        f"{r['presigned_after_seconds']} s |",
        f"| OCSP check of every serial finished, from the first push | "
        f"{r['ocsp_all_revoked_after_seconds']} s |",
        f"| the same check again, answers now cached | {r['ocsp_recheck_seconds']} s |",
        f"| published CRL lists every serial, from the first push | "
        f"{r['crl_complete_after_seconds']} s ({r['crl_entries']:,} entries, "
        f"{r['crl_bytes']:,} bytes) |",
        f"| `openssl crl -CAfile issuer.pem` | {r['crl_verify_output']} |",
    ]


STEP_TEXT = {
    "signed": "its `revoked` answer signed and stored",
    "served": "first served `revoked` by the origin (the drill's own OCSP check)",
    "crl": "first listed on a published CRL",
    "probed": "seen `revoked` by `revocd probe` through the public URL",
}


def ledger_markdown(r: dict[str, object], command: str) -> list[str]:
    led = r["ledger"]
    assert isinstance(led, dict)
    steps = led["steps"]
    assert isinstance(steps, dict)
    lines = [
        "## Propagation ledger in the mass-revocation drill",
        "",
        f"`{command}` on {platform.machine()} ({os.cpu_count()} cores): the drill above, then "
        "`revocd probe --once` and `revocd report`. Seconds from each revocation's "
        "acknowledgement to each step of its ledger (no CDN in the demo, so no purge step).",
        "",
        f"Ledgers found for {led['ledgers']:,} of {r['revocations']:,} pushed revocations; "
        f"BR deadlines met (OCSP, CRL within 24 h): {led['br_ocsp_within_24h']:,} and "
        f"{led['br_crl_within_24h']:,}; audit chain verified: {led['audit_ok']}. The probe "
        f"round took {led['probe_seconds']} s ({led['probe_problems']} problems), the "
        f"report {led['report_seconds']} s.",
        "",
        "| step | revocations | p50 | p99 | max |",
        "|---|---|---|---|---|",
    ]
    for kind, v in steps.items():
        lines.append(
            f"| {kind}: {STEP_TEXT.get(kind, kind)} | {v['count']:,} | {v['p50_seconds']} s | "
            f"{v['p99_seconds']} s | {v['max_seconds']} s |"
        )
    lines += [
        "",
        "`served` and `probed` measure when something asked, not how soon it could have been "
        "answered: the drill asks for every serial only after the last batch is acknowledged, "
        "and the prober runs after that.",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--revocations", type=int, default=100_000)
    parser.add_argument("--dir", help="demo directory (default: a temporary one)")
    parser.add_argument("--json", help="write the result as JSON here")
    parser.add_argument("--write", help="record the figures in this markdown file")
    parser.add_argument(
        "--ledger", action="store_true", help="then probe, report and measure the ledger"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="revocd-drill-") as tmp:
        directory = Path(args.dir) if args.dir else Path(tmp) / "demo"
        result = drill(args.revocations, directory, args.ledger)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.write:
        command = f"python loadtests/drill_mass_revocation.py --revocations {args.revocations}"
        if args.ledger:
            replace_section(
                Path(args.write), "drill_ledger", ledger_markdown(result, command + " --ledger")
            )
        else:
            replace_section(Path(args.write), "drill", markdown(result, command))
    counts = result["ocsp_counts"]
    ok = counts == {"revoked": args.revocations} and result["crl_verified"]
    if args.ledger:
        led = result["ledger"]
        assert isinstance(led, dict)
        ok = ok and led["ledgers"] == args.revocations and led["probe_problems"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
