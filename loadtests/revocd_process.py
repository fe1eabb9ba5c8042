"""Start `python -m responder ...` for a load tool, wait for its ready line, stop it."""

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
