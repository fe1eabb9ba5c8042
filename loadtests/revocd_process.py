"""Start `python -m responder ...` for a load tool, wait for its ready line, stop it."""

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def start(
    args: list[str], log: Path, ready: str, cpus: str | None = "0", timeout: float = 120
) -> subprocess.Popen[bytes]:
    """Output goes to `log`; `cpus` pins the process (taskset), None leaves it free."""
    pin = ["taskset", "-c", cpus] if cpus is not None else []
    proc = subprocess.Popen(
        [*pin, sys.executable, "-m", "responder", *args],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while ready not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text())
        time.sleep(0.2)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def start_demo(
    tmp: Path, port: int, control: int, certs: int, ready: str = "revocd demo ready"
) -> tuple[subprocess.Popen[bytes], Path]:
    """`revocd demo` in tmp/demo on the given ports, pinned to core 0."""
    demo_dir = tmp / "demo"
    args = ["--log-level", "WARNING", "demo", "--dir", str(demo_dir), "--port", str(port)]
    args += ["--control-port", str(control), "--certs", str(certs)]
    return start(args, tmp / "demo.log", ready), demo_dir


def register_issued(demo_dir: Path, control: int, serials: list[int], days: int = 90) -> None:
    """Report `serials` as issued by the demo issuer through the control plane, as a CA
    would."""
    not_after = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + days * 86400))
    token = (demo_dir / "control-token").read_text().strip()
    conn = http.client.HTTPConnection("127.0.0.1", control, timeout=60)
    events = [
        {"type": "issued", "issuer": "demo", "serial": format(s, "x"), "not_after": not_after}
        for s in serials
    ]
    conn.request(
        "POST", "/v1/events", json.dumps({"events": events}), {"Authorization": f"Bearer {token}"}
    )
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"registering certificates: {response.status} {response.read()!r}")
