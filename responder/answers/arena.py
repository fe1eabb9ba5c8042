"""The host's answer cache: one shared-memory arena of signed answers, keyed by GET URL,
read by every data plane process of one revocd (and by its compiled reactor in place).

Why an arena of our own: a per-process cache holds each answer once per worker, at
about 2.5 times its DER (Python objects, dicts, the rendered head), so at 10M
certificates the data plane runs out of RAM first. Here each answer is one record of
its DER, its URL and 68 bytes of times, status and digest, once per host, in a file on
tmpfs that outlives any worker: a restarted worker is warm at once.

Layout (little-endian; `Layout` below has the offsets):

    header   4 KiB: magic, geometry, the write positions, the generation, the owner's
             heartbeat
    index    slots of (u64 URL hash, u64 record position + 1), probed linearly
    counters u32 per bucket of serials: bumped when a serial in the bucket changes
    ring     records, appended at `head` and overwritten a lap later

A record is served only if all of these hold when it is read (so nothing but the
record itself needs to be trusted, and the index is only a hint):
- its URL is the request's, byte for byte (the 64-bit hash only picks the slot);
- its generation is the arena's (`clear` bumps the generation);
- its serial bucket's counter is what it was before the answer was read from the
  store (`invalidate` bumps the counter, so an answer read before a change is dead,
  whichever process wrote it and whenever);
- it is before its refresh time (or its nextUpdate, for a stale answer while the
  store is down);
- no writer has reached its bytes since: writers announce the end of what they are
  about to write (`reserved`) before writing, and a reader checks it after copying;
- the owner is alive: the process that keeps the arena right (the one whose change
  feed invalidates it, `revocd serve`'s main process) writes a heartbeat every
  second; an arena whose owner has been silent for OWNER_STALE seconds serves nothing.

Writers (any process, on a miss) serialise on an flock of the file; readers take no
lock. Stores are ordered as written on x86-64 (TSO), which the lock-free read relies
on; the compiled reader adds acquire loads.

Sizing: records are about DER + URL + 72 bytes; the ring is `server.shared_cache_mb`
(allocated up front with posix_fallocate, so a full tmpfs is an error at start, never
a SIGBUS later); the index has one slot (16 bytes) per 512 bytes of ring, the
counters one (4 bytes) per KiB: about 3.5% on top of the records. Answers much smaller
than 500 bytes (no responder certificate, short URLs) fill the index before the ring;
the oldest then become unreachable early (a miss, never a wrong answer).
"""

import contextlib
import fcntl
import hashlib
import logging
import mmap
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("revocd.arena")

MAGIC = b"RVCDARN1"
VERSION = 1
HEADER_SIZE = 4096
PROBES = 8  # index slots tried per URL
OWNER_STALE = 10.0  # seconds without a heartbeat before the arena serves nothing
ALIGN = 8
STATUS_INDEX = {"good": 0, "revoked": 1, "unknown": 2}
STATUS_NAMES = ("good", "revoked", "unknown")

# header: magic, version, header size, ring offset, ring size, index offset, index
# slots, counters offset, counters, then the live fields at fixed offsets
_GEOMETRY = struct.Struct("<8sIIQQQIQI")
HEAD_AT = 128  # u64: absolute end of the committed records
RESERVED_AT = 136  # u64: absolute end of what a writer may be writing now
GENERATION_AT = 144  # u32
BEAT_AT = 152  # f64: the owner's last heartbeat (Unix time)
OWNER_AT = 160  # u64: the owner's pid
WRITES_AT = 168  # u64: records written, for the metrics
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_SLOT = struct.Struct("<QQ")
# record: length, URL length, status, flags, DER length, generation, counter index,
# counter value, thisUpdate, nextUpdate, refresh time, SHA-256 of the DER
RECORD = struct.Struct("<IHBBIIIIIII32s")
assert RECORD.size == 68

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1


def url_hash(url: bytes) -> int:
    """FNV-1a, 64 bits, never 0 (0 marks an empty slot). The compiled reader computes
    the same. Not a keyed hash: colliding URLs can only push each other out."""
    h = _FNV_OFFSET
    for byte in url:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return h or 1


@dataclass(frozen=True, slots=True)
class Layout:
    ring_offset: int
    ring_size: int
    index_offset: int
    index_slots: int
    counters_offset: int
    counters: int

    @classmethod
    def for_size(cls, ring_bytes: int) -> "Layout":
        ring = max(ring_bytes, 1 << 16) // ALIGN * ALIGN
        # One slot per 512 bytes of ring: about two per answer of 800 bytes with its
        # URL and header (the index stays half empty, so probes stay short).
        slots = max(1024, ring // 512)
        counters = _pow2(ring // 1024)
        index_offset = HEADER_SIZE
        counters_offset = index_offset + slots * _SLOT.size
        ring_offset = counters_offset + counters * 4
        ring_offset = (ring_offset + 4095) // 4096 * 4096
        return cls(ring_offset, ring, index_offset, slots, counters_offset, counters)

    @property
    def total(self) -> int:
        return self.ring_offset + self.ring_size


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _pow2(n: int) -> int:
    p = 1024
    while p < n:
        p <<= 1
    return p


@dataclass(frozen=True, slots=True)
class Record:
    der: bytes
    this_update: int
    next_update: int
    refresh_at: int
    status: int  # index into STATUS_NAMES
    digest: bytes  # SHA-256 of the DER (the ETag)


class ArenaError(Exception):
    """The arena file cannot be created or is not one of ours."""


class Arena:
    """One revocd's shared answer cache. `create` (the owner, at start) makes a fresh
    one; `attach` (a worker) opens the owner's."""

    def __init__(self, path: Path, fd: int, mm: mmap.mmap, layout: Layout) -> None:
        self.path = path
        self._fd = fd
        self.mm = mm
        self.layout = layout
        self._slots = layout.index_slots
        self._counter_shift = 64 - (layout.counters.bit_length() - 1)

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, ring_bytes: int) -> "Arena":
        """A new, empty arena at `path` (replacing any left from an earlier run, whose
        answers no change feed has been watching since)."""
        layout = Layout.for_size(ring_bytes)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in cls.sweep_stale(path.parent):
            log.warning("removed %s, left by a revocd that did not stop cleanly", stale)
        tmp = path.with_name(path.name + f".{os.getpid()}.new")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                # Every page now, so a full tmpfs is this error and never a SIGBUS
                # in the middle of serving.
                os.posix_fallocate(fd, 0, layout.total)
            except OSError as exc:
                raise ArenaError(
                    f"cannot allocate {layout.total >> 20} MiB for the shared answer cache "
                    f"at {path}: {os.strerror(exc.errno or 0)}"
                ) from None
            mm = mmap.mmap(fd, layout.total)
            mm[:HEADER_SIZE] = bytes(HEADER_SIZE)
            _GEOMETRY.pack_into(
                mm,
                0,
                MAGIC,
                VERSION,
                HEADER_SIZE,
                layout.ring_offset,
                layout.ring_size,
                layout.index_offset,
                layout.index_slots,
                layout.counters_offset,
                layout.counters,
            )
            os.rename(tmp, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        arena = cls(path, fd, mm, layout)
        arena.beat()
        return arena

    @staticmethod
    def sweep_stale(directory: Path, now: float | None = None) -> list[Path]:
        """Remove the arenas in `directory` left by a revocd that died without removing
        its own (SIGKILL, a crash): tmpfs memory no one frees otherwise. An arena is
        left over when its owner has not beaten for a minute and its owner process is
        gone; a worker that still maps one keeps its mapping (and serves nothing from
        it, its owner being silent). Returns what was removed."""
        now = time.time() if now is None else now
        removed = []
        for path in directory.glob("revocd-*.arena"):
            try:
                with path.open("rb") as f:
                    header = f.read(OWNER_AT + 8)
            except OSError:
                continue
            if len(header) < OWNER_AT + 8 or header[:8] != MAGIC:
                continue
            beat = _F64.unpack_from(header, BEAT_AT)[0]
            pid = _U64.unpack_from(header, OWNER_AT)[0]
            if now - beat < 6 * OWNER_STALE or (pid and _alive(pid)):
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
        return removed

    @classmethod
    def attach(cls, path: Path) -> "Arena":
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise ArenaError(f"cannot open the shared answer cache {path}: {exc}") from None
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_SIZE:
                raise ArenaError(f"{path} is not a revocd answer cache (too short)")
            mm = mmap.mmap(fd, size)
            magic, version, header, *geometry = _GEOMETRY.unpack_from(mm, 0)
            if magic != MAGIC or version != VERSION or header != HEADER_SIZE:
                raise ArenaError(f"{path} is not a revocd answer cache (version {version})")
            layout = Layout(*geometry)
            if layout.total > size:
                raise ArenaError(f"{path} is shorter than its header says")
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, mm, layout)

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a compiled reader still holds it
            self.mm.close()
        os.close(self._fd)

    def remove(self) -> None:
        """The owner stops: the file goes (tmpfs memory is freed once every worker has
        let go of it), unless a newer revocd has put its own in its place."""
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                os.unlink(self.path)
        self.close()

    # -- the owner -----------------------------------------------------------------------

    def beat(self, now: float | None = None) -> None:
        """The owner's heartbeat (every second): while it beats, invalidations reach
        the arena."""
        _F64.pack_into(self.mm, BEAT_AT, time.time() if now is None else now)
        _U64.pack_into(self.mm, OWNER_AT, os.getpid())

    def owned(self, now: float) -> bool:
        return bool(now - _F64.unpack_from(self.mm, BEAT_AT)[0] < OWNER_STALE)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def clear(self) -> None:
        """Forget every answer (a resync of the owner's change feed)."""
        with self._locked():
            generation = _U32.unpack_from(self.mm, GENERATION_AT)[0]
            _U32.pack_into(self.mm, GENERATION_AT, (generation + 1) & 0xFFFFFFFF)

    def invalidate(self, serial: int) -> None:
        """A serial's status changed: every answer for it (any issuer, any URL) is dead."""
        at = self.layout.counters_offset + 4 * self._counter(serial)
        with self._locked():
            value = _U32.unpack_from(self.mm, at)[0]
            _U32.pack_into(self.mm, at, (value + 1) & 0xFFFFFFFF)

    # -- writing -------------------------------------------------------------------------

    def _counter(self, serial: int) -> int:
        # Fibonacci hashing of the serial's low 64 bits: serials are random anyway;
        # two in one bucket only cost each other a spurious miss.
        return ((serial & _MASK64) * 0x9E3779B97F4A7C15 & _MASK64) >> self._counter_shift

    def snapshot(self, serial: int) -> tuple[int, int, int]:
        """Taken before the answer is read from the store: (generation, counter index,
        counter value). `put` with it stores nothing an invalidation since has killed."""
        index = self._counter(serial)
        value = _U32.unpack_from(self.mm, self.layout.counters_offset + 4 * index)[0]
        return _U32.unpack_from(self.mm, GENERATION_AT)[0], index, value

    def put(
        self,
        url: bytes,
        snapshot: tuple[int, int, int],
        der: bytes,
        this_update: int,
        next_update: int,
        refresh_at: int,
        status: int,
    ) -> bool:
        """Append the answer for `url`; False if it was not stored (dead already, or
        too large for the ring)."""
        layout = self.layout
        length = (RECORD.size + len(url) + len(der) + ALIGN - 1) // ALIGN * ALIGN
        if length > layout.ring_size // 4 or len(url) > 0xFFFF:
            return False
        generation, index, value = snapshot
        digest = hashlib.sha256(der).digest()
        mm = self.mm
        with self._locked():
            if _U32.unpack_from(mm, GENERATION_AT)[0] != generation or (
                _U32.unpack_from(mm, layout.counters_offset + 4 * index)[0] != value
            ):
                return False  # changed since the store was read
            pos = _U64.unpack_from(mm, HEAD_AT)[0]
            offset = pos % layout.ring_size
            if offset + length > layout.ring_size:
                pos += layout.ring_size - offset  # records never wrap: start the next lap
                offset = 0
            end = pos + length
            # Announce before writing: a reader of the record a lap behind sees that
            # its bytes may be changing.
            _U64.pack_into(mm, RESERVED_AT, end)
            at = layout.ring_offset + offset
            RECORD.pack_into(
                mm,
                at,
                length,
                len(url),
                status,
                0,
                len(der),
                generation,
                index,
                value,
                this_update,
                next_update,
                refresh_at,
                digest,
            )
            body = at + RECORD.size
            mm[body : body + len(url)] = url
            mm[body + len(url) : body + len(url) + len(der)] = der
            _U64.pack_into(mm, HEAD_AT, end)
            self._index(url_hash(url), pos, end)
            writes = _U64.unpack_from(mm, WRITES_AT)[0]
            _U64.pack_into(mm, WRITES_AT, writes + 1)
        return True

    def _index(self, h: int, pos: int, head: int) -> None:
        """Point a slot at the record: the URL's own slot, else an empty one, else one
        whose record has been overwritten, else the oldest of the probe window."""
        layout = self.layout
        mm = self.mm
        choice = -1
        oldest = -1
        oldest_pos = 1 << 64
        for i in range(PROBES):
            slot = (h + i) % self._slots
            at = layout.index_offset + slot * _SLOT.size
            hashed, stored = _SLOT.unpack_from(mm, at)
            if hashed == h or stored == 0 or stored - 1 + layout.ring_size < head:
                choice = slot
                break
            if stored < oldest_pos:
                oldest, oldest_pos = slot, stored
        if choice < 0:
            choice = oldest
        _SLOT.pack_into(mm, layout.index_offset + choice * _SLOT.size, h, pos + 1)

    # -- reading (the pure twin of the compiled reader in ext/http_reactor.pyx) ----------

    def lookup(self, url: bytes, now: int, stale_ok: bool = False) -> Record | None:
        """The live answer for `url`: before its refresh time, or before its nextUpdate
        with `stale_ok`; None otherwise, or when the owner is gone."""
        mm = self.mm
        layout = self.layout
        if not self.owned(float(now)):
            return None
        h = url_hash(url)
        generation = _U32.unpack_from(mm, GENERATION_AT)[0]
        for i in range(PROBES):
            at = layout.index_offset + ((h + i) % self._slots) * _SLOT.size
            hashed, stored = _SLOT.unpack_from(mm, at)
            if hashed != h or stored == 0:
                continue
            found = self._read(stored - 1, url, generation, now, stale_ok)
            if found is not None:
                return found
        return None

    def _read(
        self, pos: int, url: bytes, generation: int, now: int, stale_ok: bool
    ) -> Record | None:
        mm = self.mm
        layout = self.layout
        head = _U64.unpack_from(mm, HEAD_AT)[0]
        if pos + RECORD.size > head or pos % ALIGN:
            return None
        at = layout.ring_offset + pos % layout.ring_size
        if at + RECORD.size > layout.total:
            return None
        (
            length,
            url_len,
            status,
            _,
            der_len,
            rec_generation,
            index,
            value,
            this_update,
            next_update,
            refresh_at,
            digest,
        ) = RECORD.unpack_from(mm, at)
        if (
            length < RECORD.size + url_len + der_len
            or pos + length > head
            or at + length > layout.total
            or url_len != len(url)
            or index >= layout.counters
            or status > 2
        ):
            return None
        body = at + RECORD.size
        if mm[body : body + url_len] != url:
            return None
        if rec_generation != generation:
            return None
        if _U32.unpack_from(mm, layout.counters_offset + 4 * index)[0] != value:
            return None
        if now >= (next_update if stale_ok else refresh_at):
            return None
        der = mm[body + url_len : body + url_len + der_len]
        # Checked after the copy: had a writer reached these bytes, it said so first.
        if _U64.unpack_from(mm, RESERVED_AT)[0] > pos + layout.ring_size:
            return None
        return Record(der, this_update, next_update, refresh_at, status, digest)

    # -- for the metrics -------------------------------------------------------------------

    def stats(self) -> tuple[int, int]:
        """(bytes of records written so far, up to the ring size; records written)."""
        head = _U64.unpack_from(self.mm, HEAD_AT)[0]
        return min(head, self.layout.ring_size), _U64.unpack_from(self.mm, WRITES_AT)[0]
