"""A real rsyslogd (Debian's) as the SIEM collector: plain TCP and TLS (RFC 5425) inputs,
each written to a file of its own with the structured data first, so a test can read
which audit records arrived, in which order, how often."""

import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from responder.store.embedded import free_port

from .conftest import openssl, require_tool

_SEQ = re.compile(rb'seq="(\d+)"')


@dataclass
class Rsyslog:
    dir: Path
    tcp_port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.binary = require_tool("rsyslogd")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = self.dir / "cert.pem", self.dir / "key.pem"
        openssl(
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-days",
            "2",
            "-keyout",
            self.key,
            "-out",
            self.cert,
        )
        d = self.dir
        # Direct main queue: a message is in the file before the next is read, so what
        # the collector acknowledged at TCP level and then wrote is what a test sees.
        (d / "rsyslog.conf").write_text(f"""
global(workDirectory="{d}" defaultNetstreamDriverCAFile="{self.cert}"
       defaultNetstreamDriverCertFile="{self.cert}" defaultNetstreamDriverKeyFile="{self.key}")
main_queue(queue.type="Direct")
module(load="imtcp" maxSessions="100")
template(name="sd" type="string" string="%structured-data% %msg%\\n")
ruleset(name="plain") {{ action(type="omfile" file="{d}/tcp.log" template="sd") }}
ruleset(name="tls") {{ action(type="omfile" file="{d}/tls.log" template="sd") }}
input(type="imtcp" port="{self.tcp_port}" ruleset="plain")
input(type="imtcp" port="{self.tls_port}" ruleset="tls" streamDriver.name="gtls"
      streamDriver.mode="1" streamDriver.authMode="anon")
""")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-n", "-f", str(self.dir / "rsyslog.conf"), "-i", str(self.dir / "pid")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "rsyslogd.err", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            try:
                for port in (self.tcp_port, self.tls_port):
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("rsyslogd did not listen: " + (self.dir / "rsyslogd.err").read_text())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)
        self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def seqs(self, name: str) -> list[int]:
        path = self.dir / f"{name}.log"
        if not path.exists():
            return []
        return [int(m.group(1)) for m in _SEQ.finditer(path.read_bytes())]

    def lines(self, name: str) -> list[str]:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []
