"""SIEM export of the audit log: each [[siem]] sink gets every audit record once, in
order, across restarts of revocd and of the collector.

Reading. The exporter tails the audit log file (rotated files included) and never sits
in the way of the log's writers: event acknowledgement appends to the file and goes on;
a collector that is down or slow only makes the exporter fall behind (back-pressure is
the file itself, and revocd_siem_lag_records says how far).

Delivery. Syslog over TCP and TLS has no acknowledgement of its own, so the exporter
takes the peer's TCP acknowledgement as delivery: after writing a batch it waits until
the kernel's send queue for the connection is empty (SIOCOUTQ) with the connection
still established (TCP_INFO), and only then moves the cursor past the batch. Bytes the
collector's kernel has acknowledged reach the collector even if the connection is
reset later, so the exporter never gives up on a connection that stands: a collector
that is frozen or slow is waited for (logged and counted as `stalled`), not sent the
batch again on a new connection, which would deliver it twice (the test with a frozen
rsyslog found exactly that). A connection that breaks before the batch drained sends
it again on the next one. The cursor (seq, hash, file position) is written atomically
to `<state_dir>/siem-<name>.cursor`.

What that promises: a record is taken once, in order, when revocd, the collector or the
network restart or fail between batches, and when the collector freezes. Two windows
remain: a collector that exits holding bytes its kernel acknowledged but it had not
read loses them (its kernel drops them), and one that had read part of a batch when
its connection broke gets that part again; and revocd SIGKILLed between a batch's
acknowledgement and its cursor write sends that batch again. Each message carries its
seq (formats.py), so such a repeat can be recognised.
"""

import contextlib
import fcntl
import json
import logging
import os
import socket
import ssl
import struct
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from ..config.model import SiemConfig, SiemTransport
from ..observability import metrics
from .formats import octet_counted, syslog_message

log = logging.getLogger("revocd.siem")

_TCP_ESTABLISHED = 1
POLL = 0.5  # seconds between looks at the audit log when nothing is new


@dataclass
class Cursor:
    """The last record the sink has taken, and where the next one starts."""

    seq: int = -1
    hash: str = ""
    inode: int = 0
    offset: int = 0

    @classmethod
    def load(cls, path: Path) -> "Cursor":
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        return cls(int(raw["seq"]), str(raw["hash"]), int(raw["inode"]), int(raw["offset"]))

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self.__dict__, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _files(audit_file: Path) -> list[Path]:
    """The rotated files in chain order, then the live file."""

    def last_seq(p: Path) -> int:
        tail = p.name.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else -1

    rotated = sorted(audit_file.parent.glob(audit_file.name + ".*-*"), key=last_seq)
    return [*rotated, audit_file]


Batch = list[tuple[dict[str, Any], int, int]]


def read_after(
    audit_file: Path, cursor: Cursor, limit: int
) -> list[tuple[dict[str, Any], int, int]]:
    """Up to `limit` whole records after the cursor, each with its file's inode and the
    offset just past it. Starts at the cursor's offset when the live file is still the
    one it points into; otherwise walks the files from the start (after a rotation)."""
    out: Batch = []
    for path in _files(audit_file):
        # a rotated file is named <log>.<first>-<last>: one the sink is past is not read
        tail = path.name.rsplit("-", 1)[-1] if path != audit_file else ""
        if tail.isdigit() and int(tail) <= cursor.seq:
            continue
        if not path.exists():
            continue
        with open(path, "rb") as f:
            inode = os.fstat(f.fileno()).st_ino
            if inode == cursor.inode:
                f.seek(cursor.offset)
            for line in _whole_lines(f):
                offset = f.tell()
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a torn line; the log's next writer records it as such
                if not isinstance(record, dict) or record.get("seq", -1) <= cursor.seq:
                    continue
                out.append((record, inode, offset))
                if len(out) >= limit:
                    return out
    return out


def _whole_lines(f: Any) -> Iterator[bytes]:
    """Lines that end in a newline: a line still being written is left for later."""
    while True:
        start = f.tell()
        line = f.readline()
        if not line:
            return
        if not line.endswith(b"\n"):
            f.seek(start)
            return
        yield line


def head_seq(audit_file: Path) -> int:
    """The seq of the live file's last record (-1: none), for the lag metric."""
    try:
        with open(audit_file, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            lines = f.read().rstrip(b"\n").rsplit(b"\n", 1)
        return int(json.loads(lines[-1])["seq"])
    except (OSError, ValueError, KeyError, IndexError):
        return -1


def unsent_bytes(sock: Any) -> int:
    """Bytes written but not yet acknowledged by the peer (Linux SIOCOUTQ)."""
    buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])


def established(sock: Any) -> bool:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return bool(info[0] == _TCP_ESTABLISHED)


class Delivery(Exception):
    """The collector did not take a batch (connection lost, or no drain in time)."""


class Sink:
    """One [[siem]] sink's loop; owned by `revocd serve`'s main process."""

    def __init__(
        self, settings: SiemConfig, audit_file: Path, state_dir: Path, hostname: str | None = None
    ) -> None:
        self.settings = settings
        self.audit_file = audit_file
        self.cursor_file = state_dir / f"siem-{settings.name}.cursor"
        self.hostname = hostname or socket.gethostname()
        self.cursor = Cursor.load(self.cursor_file)
        self._stream: trio.abc.Stream | None = None
        self._sock: Any = None  # the TCP socket under the stream, for its queue
        self._written = False  # the batch in flight is wholly in the kernel's hands
        self._labels = settings.name

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                sent = await self.once()
                delay = 0.5
                if not sent:
                    await trio.sleep(POLL)
            except (OSError, ssl.SSLError, trio.BrokenResourceError, Delivery) as exc:
                kind = type(exc).__name__
                metrics.SIEM_ERRORS.labels(self._labels, kind).inc()
                log.warning(
                    "siem %s: %s; retrying from seq %d in %.1f s",
                    self.settings.name,
                    exc,
                    self.cursor.seq + 1,
                    delay,
                )
                await self._close()
                await trio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_seconds)

    async def once(self) -> int:
        """Send one batch of what is new; the number of records the sink took."""
        batch = await trio.to_thread.run_sync(
            read_after, self.audit_file, self.cursor, self.settings.batch
        )
        head = await trio.to_thread.run_sync(head_seq, self.audit_file)
        metrics.SIEM_LAG.labels(self._labels).set(max(0, head - self.cursor.seq))
        if not batch:
            return 0
        payload = b"".join(self._frame(record) for record, _, _ in batch)
        last, inode, offset = batch[-1]
        confirmed = Cursor(int(last["seq"]), str(last.get("hash", "")), inode, offset)
        try:
            await self._deliver(payload)
        except trio.Cancelled:
            # A stop (SIGTERM) while a batch is on its way: wait up to timeout_seconds for
            # the collector to take it and record that, so a clean restart does not send
            # it again; past that, it is sent again after the restart.
            with trio.CancelScope(shield=True), trio.move_on_after(self.settings.timeout_seconds):
                if self._written and await self._drained():
                    await trio.to_thread.run_sync(confirmed.save, self.cursor_file)
            raise
        self.cursor = confirmed
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self.cursor.save, self.cursor_file)
        metrics.SIEM_EXPORTED.labels(self._labels).inc(len(batch))
        metrics.SIEM_LAG.labels(self._labels).set(max(0, head - self.cursor.seq))
        return len(batch)

    def _frame(self, record: dict[str, Any]) -> bytes:
        s = self.settings
        message = syslog_message(record, s.format, s.facility, s.app_name, self.hostname)
        if s.transport is SiemTransport.FILE:
            return message.split(b"\xef\xbb\xbf", 1)[1] + b"\n"
        return octet_counted(message)

    async def _deliver(self, payload: bytes) -> None:
        s = self.settings
        if s.transport is SiemTransport.FILE:
            await trio.to_thread.run_sync(self._append, payload)
            return
        if self._stream is None or self._sock is None or not established(self._sock):
            await self._close()
            await self._connect()
        assert self._stream is not None and self._sock is not None
        self._written = False
        await self._stream.send_all(payload)
        self._written = True
        if not await self._drained():
            raise Delivery("connection closed before the collector took the batch")

    async def _drained(self) -> bool:
        """Wait until the collector's TCP stack has acknowledged every byte written:
        True, or False when the connection broke first. No deadline while the connection
        stands: a collector that is frozen or slow (its window closed) is waited for,
        since bytes its kernel took will reach it, and sending them again on a new
        connection would deliver them twice. A dead collector host is found by the
        kernel's own retransmission limit, which ends the connection."""
        sock = self._sock
        waited, warned = 0.0, False
        while unsent_bytes(sock) > 0:
            if not established(sock):
                return False
            await trio.sleep(0.005)
            waited += 0.005
            if not warned and waited >= self.settings.timeout_seconds:
                warned = True
                metrics.SIEM_ERRORS.labels(self._labels, "stalled").inc()
                log.warning(
                    "siem %s: the collector has not taken a batch for %.0f s; waiting",
                    self.settings.name,
                    waited,
                )
        return established(sock)

    def _append(self, payload: bytes) -> None:
        assert self.settings.path is not None
        with open(self.settings.path, "ab") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())

    async def _connect(self) -> None:
        s = self.settings
        host, _, port = s.address.rpartition(":")
        with trio.fail_after(s.timeout_seconds):
            tcp = await trio.open_tcp_stream(host.strip("[]"), int(port))
        self._sock = tcp.socket
        stream: trio.abc.Stream = tcp
        if s.transport is SiemTransport.TLS:
            context = ssl.create_default_context(
                cafile=str(s.ca_file) if s.ca_file is not None else None
            )
            if s.cert_file is not None and s.key_file is not None:
                context.load_cert_chain(str(s.cert_file), str(s.key_file))
            tls = trio.SSLStream(tcp, context, server_hostname=s.server_name or host)
            with trio.fail_after(s.timeout_seconds):
                await tls.do_handshake()
            stream = tls
        self._stream = stream
        metrics.SIEM_CONNECTED.labels(self._labels).set(1)
        log.info("siem %s: connected to %s (%s)", s.name, s.address, s.transport.value)

    async def _close(self) -> None:
        metrics.SIEM_CONNECTED.labels(self._labels).set(0)
        stream, self._stream, self._sock = self._stream, None, None
        if stream is not None:
            with contextlib.suppress(Exception), trio.move_on_after(1):
                await trio.aclose_forcefully(stream)
