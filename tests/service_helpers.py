"""Start revocd for real (`revocd demo`, `revocd serve`) as a subprocess and talk to it."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from responder.store.embedded import free_port

READY_TIMEOUT = 120


@dataclass
class Proc:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def wait_for(self, text: str, timeout: float = READY_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.process.poll() is not None:
                raise AssertionError(
                    f"revocd exited {self.process.returncode}:\n" + "".join(self.lines)
                )
            time.sleep(0.05)
        # Not ready in time: stop it (SIGINT first, so it stops its embedded Valkey too)
        # rather than leave a half-started revocd running after the test.
        self.stop()
        raise AssertionError(f"no {text!r} within {timeout} s:\n" + "".join(self.lines))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    @property
    def output(self) -> str:
        return "".join(self.lines)


def start(*args: str, cwd: Path | None = None) -> Proc:
    process = subprocess.Popen(
        [sys.executable, "-m", "responder", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    proc = Proc(process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            proc.lines.append(line)

    threading.Thread(target=pump, daemon=True).start()
    return proc


@dataclass
class Demo:
    dir: Path
    port: int
    control_port: int
    proc: Proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def control(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    @property
    def token(self) -> str:
        return (self.dir / "control-token").read_text().strip()

    def cert(self, name: str) -> Path:
        return self.dir / "certs" / f"{name}.pem"


def start_demo(directory: Path, certs: int = 200, extra: tuple[str, ...] = ()) -> Demo:
    port, control = free_port(), free_port()
    proc = start(
        "demo",
        "--dir",
        str(directory),
        "--port",
        str(port),
        "--control-port",
        str(control),
        "--certs",
        str(certs),
        *extra,
    )
    proc.wait_for("revocd demo ready")
    return Demo(directory, port, control, proc)


def raw_http(port: int, payload: bytes, timeout: float = 5.0, half_close: bool = False) -> bytes:
    """Send raw bytes and read until the server closes or the timeout passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return data


def get(port: int, path: str, headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return raw_http(
        port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode()
    )


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body
