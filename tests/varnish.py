"""A real varnishd (Debian's, with vmod-xkey from varnish-modules) running
deploy/varnish/revocd.vcl in front of a revocd data plane, for the CDN tests."""

import http.client
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from responder.store.embedded import free_port

from .conftest import require_tool

VCL = Path(__file__).resolve().parents[1] / "deploy" / "varnish" / "revocd.vcl"


def render_vcl(backend_port: int) -> str:
    text = VCL.read_text()
    for name, value in {
        "REVOCD_BACKEND_HOST": "127.0.0.1",
        "REVOCD_BACKEND_PORT": str(backend_port),
        "REVOCD_PURGER": "127.0.0.1",
    }.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text
    return text


@dataclass
class Varnish:
    dir: Path
    port: int
    backend_port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = require_tool("varnishd")
        (self.dir / "revocd.vcl").write_text(render_vcl(self.backend_port))
        work = self.dir / "work"
        shutil.rmtree(work, ignore_errors=True)
        self.proc = subprocess.Popen(
            [
                exe,
                "-F",
                "-j",
                "none",  # no privilege separation in a test directory
                "-n",
                str(work),
                "-a",
                f"127.0.0.1:{self.port}",
                "-T",
                "none",
                "-f",
                str(self.dir / "revocd.vcl"),
                "-s",
                "malloc,64m",
                "-p",
                "default_ttl=0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.get("/healthz")
                return
            except OSError:
                if self.proc.poll() is not None:
                    out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                    raise AssertionError(f"varnishd exited: {out}") from None
                if time.monotonic() > deadline:
                    raise AssertionError("varnishd did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def freeze(self) -> None:
        """SIGSTOP every varnishd process (manager and child): the cache is kept, and
        nothing answers, as with a CDN edge that is down."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def _pids(self) -> list[int]:
        """The manager and its descendants (the cache process serves the requests)."""
        assert self.proc is not None
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
            todo.extend(int(p) for p in out.stdout.split())
        assert len(found) >= 2, "varnishd's cache process not found"
        return found

    def get(self, path: str, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        finally:
            conn.close()


def varnish_for(directory: Path, backend_port: int, port: int | None = None) -> Varnish:
    directory.mkdir(parents=True, exist_ok=True)
    return Varnish(directory, port or free_port(), backend_port)
