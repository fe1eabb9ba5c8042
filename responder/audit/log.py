"""The security/audit log: append-only JSON lines, each record chained to the one before.

Every record carries `seq` (one more than the previous record's), `prev` (the previous
record's `hash`) and `hash`, the SHA-256 of the record's canonical JSON without `hash`.
Editing a record breaks its own hash; deleting or reordering records breaks `seq` and
`prev`. `revocd audit verify` walks the chain and names the first record that does not
fit. Dropping records from the end leaves a valid shorter chain, so the head (`seq` and
`hash` of the last record) is printed by `verify` and shipped elsewhere by operators; see
docs/security.md.

Several processes may append to one file (the service, `revocd responder-key install`):
each append takes an exclusive `flock`, reads the head from the end of the file if another
writer moved it, writes and fsyncs. A crash in the middle of a write leaves a torn last
line; the next writer ends it and appends an `audit.torn_record` record naming the torn
bytes' SHA-256, so the chain stays verifiable and the damage stays visible.

When the file passes `max_bytes` the writer renames it to `<name>.<first>-<last>` and
starts a new file that continues the same chain (its first `prev` is the old head).
"""

import contextlib
import fcntl
import getpass
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..control import strictjson

log = logging.getLogger("revocd.audit")

GENESIS = "0" * 64
RESERVED = frozenset({"seq", "time", "kind", "host", "pid", "prev", "hash"})
_TAIL_READ = 1 << 16


def record_hash(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def operator_name() -> str:
    """Who ran a command, for records made from the command line."""
    try:
        return f"{getpass.getuser()} (uid {os.getuid()})"
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def time_text(now: float) -> str:
    """RFC 3339 UTC with milliseconds, as every record's `time` is written."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


@dataclass
class _Head:
    seq: int = -1
    hash: str = GENESIS
    size: int = 0
    inode: int = 0
    previous_file: str | None = None  # set when an empty file continues a rotated one


class AuditLog:
    """One writer per process; safe to share a file between processes."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 256 << 20,
        fsync: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.clock = clock  # wall-clock time of records; injected so tests can fix it
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.host = socket.gethostname()
        self._head: _Head | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        return self.write_many([(kind, fields)])[-1]

    def write_many(self, entries: Iterable[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
        """Append records in order under one lock and one fsync."""
        entries = list(entries)
        if not entries:
            return []
        for kind, data in entries:
            clash = RESERVED & data.keys()
            if clash:
                raise ValueError(f"audit record {kind}: reserved field names {sorted(clash)}")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            head, torn = self._read_head(fd)
            if head.size >= self.max_bytes:
                fd, rotated = self._rotate(fd, head)
                head = _Head(head.seq, head.hash, 0, os.fstat(fd).st_ino, rotated)
                torn = None
            lines: list[bytes] = []
            records: list[dict[str, Any]] = []
            if torn == b"":
                lines.append(b"\n")
            elif torn is not None:
                lines.append(b"\n")
                entries.insert(
                    0,
                    (
                        "audit.torn_record",
                        {"torn_sha256": hashlib.sha256(torn).hexdigest(), "torn_bytes": len(torn)},
                    ),
                )
                log.error("audit log %s: the last record was torn; noted in the chain", self.path)
            if head.size == 0 and head.seq >= 0:
                # A file that continues a chain says so first: a file starting mid-chain
                # without this record has lost its beginning.
                entries.insert(
                    0,
                    (
                        "audit.continued",
                        {"previous_file": head.previous_file, "previous_seq": head.seq},
                    ),
                )
            seq, prev = head.seq, head.hash
            stamp = time_text(self.clock())
            pid = os.getpid()
            for kind, data in entries:
                seq += 1
                record: dict[str, Any] = {
                    "seq": seq,
                    "time": stamp,
                    "kind": kind,
                    "host": self.host,
                    "pid": pid,
                    **data,
                    "prev": prev,
                }
                record["hash"] = prev = record_hash(record)
                records.append(record)
                lines.append(json.dumps(record, separators=(",", ":")).encode() + b"\n")
            data_out = b"".join(lines)
            os.write(fd, data_out)
            if self.fsync:
                os.fsync(fd)
            stat = os.fstat(fd)
            self._head = _Head(seq, prev, stat.st_size, stat.st_ino)
            return records
        finally:
            os.close(fd)  # also releases the lock

    def last(
        self, kind: str, match: Mapping[str, Any] | None = None, max_bytes: int = 16 << 20
    ) -> dict[str, Any] | None:
        """The newest record of this kind (with these field values) in the current file,
        reading back at most `max_bytes`; None if there is none."""
        try:
            with open(self.path, "rb") as f:
                end = f.seek(0, os.SEEK_END)
                start = max(0, end - max_bytes)
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            return None
        needle = f'"kind":"{kind}"'.encode()
        for line in reversed(data.split(b"\n")):
            if needle in line:
                try:
                    record: dict[str, Any] = json.loads(line)
                except ValueError:
                    continue
                if record.get("kind") == kind and all(
                    record.get(k) == v for k, v in (match or {}).items()
                ):
                    return record
        return None

    def _read_head(self, fd: int) -> tuple[_Head, bytes | None]:
        """The chain's head, and the torn bytes after the last newline if a write was cut."""
        stat = os.fstat(fd)
        cached = self._head
        if cached is not None and cached.size == stat.st_size and cached.inode == stat.st_ino:
            return cached, None
        if stat.st_size == 0:
            return _Head(size=0, inode=stat.st_ino, **self._continued_from()), None
        read = min(stat.st_size, _TAIL_READ)
        while True:
            tail = os.pread(fd, read, stat.st_size - read)
            cut = tail.rfind(b"\n", 0, len(tail) - 1 if tail.endswith(b"\n") else len(tail))
            if cut >= 0 or read == stat.st_size:
                break
            read = min(stat.st_size, read * 4)
        torn: bytes | None = None
        if not tail.endswith(b"\n"):
            last_nl = tail.rfind(b"\n")
            torn = tail[last_nl + 1 :]
            try:
                whole = json.loads(torn)
                # Cut after the record but before its newline: the record is whole.
                return _Head(whole["seq"], whole["hash"], stat.st_size, stat.st_ino), b""
            except (ValueError, KeyError, TypeError):
                tail = tail[: last_nl + 1]
        lines = [line for line in tail.split(b"\n") if line.strip()]
        for line in reversed(lines):
            try:
                record = json.loads(line)
                return _Head(record["seq"], record["hash"], stat.st_size, stat.st_ino), torn
            except (ValueError, KeyError, TypeError):
                continue  # an earlier torn line; verify reports it
        return _Head(size=stat.st_size, inode=stat.st_ino, **self._continued_from()), torn

    def _continued_from(self) -> dict[str, Any]:
        """A fresh file continues the chain of the newest rotated file beside it."""
        rotated = sorted(
            self.path.parent.glob(self.path.name + ".*-*"),
            key=lambda p: (
                int(p.name.rsplit("-", 1)[1]) if p.name.rsplit("-", 1)[1].isdigit() else -1
            ),
        )
        if not rotated:
            return {}
        last = rotated[-1].read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        record = json.loads(last)
        return {"seq": record["seq"], "hash": record["hash"], "previous_file": rotated[-1].name}

    def _rotate(self, fd: int, head: _Head) -> tuple[int, str]:
        first = 0
        with open(self.path, "rb") as f:
            first_line = f.readline()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            first = json.loads(first_line)["seq"]
        rotated = f"{self.path.name}.{first}-{head.seq}"
        self.path.rename(self.path.with_name(rotated))
        new = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        fcntl.flock(new, fcntl.LOCK_EX)
        os.close(fd)
        log.info("audit log rotated at seq %d", head.seq)
        return new, rotated


@dataclass
class Finding:
    line: int  # 1-based, in the file it was found in
    seq: int | None
    problem: str
    file: str = ""


@dataclass
class VerifyResult:
    records: int = 0
    first_seq: int | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    errors: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as f:
        yield from enumerate(f, 1)


def verify(paths: Iterable[str | Path], anchor: str | None = None) -> VerifyResult:
    """Walk the chain through the files in order. `anchor` is the `prev` the first record
    must have (the head of an earlier, already verified file); without it, a chain that
    does not start at seq 0 is noted, not failed."""
    result = VerifyResult()
    prev_hash: str | None = anchor
    prev_seq: int | None = None
    pending_torn: tuple[str, int, bytes] | None = None
    for path in map(Path, paths):
        for number, raw in _lines(path):
            where = str(path)
            if not raw.strip():
                continue
            try:
                # Strict: a record with a key given twice reads differently to different
                # parsers (json keeps the last), so it is an edit, never a valid record.
                record = strictjson.loads(raw, max_depth=64)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
                seq, rec_prev, rec_hash = record["seq"], record["prev"], record["hash"]
                if not isinstance(seq, int) or isinstance(seq, bool):
                    raise TypeError("seq")
            except strictjson.DuplicateKey as exc:
                result.errors.append(
                    Finding(number, None, f"record edited: key {exc.key!r} appears twice", where)
                )
                continue
            except (ValueError, KeyError, TypeError):
                # A torn line is accepted only if the next record names it.
                torn = raw.rstrip(b"\n")
                if pending_torn is not None:
                    result.errors.append(Finding(pending_torn[1], None, "unreadable record", where))
                pending_torn = (where, number, torn)
                continue
            if pending_torn is not None:
                torn_where, torn_line, torn_bytes = pending_torn
                pending_torn = None
                if (
                    record.get("kind") == "audit.torn_record"
                    and record.get("torn_sha256") == hashlib.sha256(torn_bytes).hexdigest()
                ):
                    result.notes.append(
                        Finding(
                            torn_line,
                            None,
                            "torn record from a crash, noted by the writer",
                            torn_where,
                        )
                    )
                else:
                    result.errors.append(
                        Finding(
                            torn_line, None, "unreadable record (edited or corrupted)", torn_where
                        )
                    )
            if record_hash(record) != rec_hash:
                result.errors.append(
                    Finding(
                        number, seq, "record edited: its hash does not match its content", where
                    )
                )
            if prev_seq is None:
                result.first_seq = seq
                if prev_hash is None and seq == 0 and rec_prev != GENESIS:
                    result.errors.append(
                        Finding(number, seq, "first record does not start the chain", where)
                    )
                elif prev_hash is None and seq != 0 and record.get("kind") != "audit.continued":
                    result.errors.append(
                        Finding(number, seq, f"records before seq {seq} missing (deleted)", where)
                    )
                elif prev_hash is None and seq != 0:
                    result.notes.append(
                        Finding(
                            number,
                            seq,
                            f"chain starts at seq {seq}: it continues an earlier file",
                            where,
                        )
                    )
                elif prev_hash is not None and rec_prev != prev_hash:
                    result.errors.append(
                        Finding(number, seq, "does not continue the given anchor", where)
                    )
            else:
                if seq != prev_seq + 1:
                    if seq > prev_seq + 1:
                        problem = (
                            f"records {prev_seq + 1}..{seq - 1} missing here (deleted or moved)"
                        )
                    else:
                        problem = f"out of order: seq {seq} after seq {prev_seq}"
                    result.errors.append(Finding(number, seq, problem, where))
                elif rec_prev != prev_hash:
                    result.errors.append(
                        Finding(
                            number,
                            seq,
                            "prev does not match the record before (chain broken)",
                            where,
                        )
                    )
            prev_seq, prev_hash = seq, rec_hash
            result.records += 1
            result.head_seq, result.head_hash = seq, rec_hash
    if pending_torn is not None:
        # Not yet explained by an audit.torn_record: from here a crash while writing and
        # a cut or edited tail look the same, so it fails until a writer has noted it
        # (any revocd start that appends to the log does).
        result.errors.append(
            Finding(
                pending_torn[1],
                None,
                "torn last record that no audit.torn_record explains (a crash while "
                "writing, or the tail was cut or edited); start revocd to note it, then "
                "verify again",
                pending_torn[0],
            )
        )
    return result
