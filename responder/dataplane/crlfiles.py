"""The CRL files the data plane serves, held in memory with their ETag.

Only what a CRL generator publishes is served: a regular file directly in
`server.crl_dir` whose name does not start with a dot and ends in `.crl` (a CRL) or
`.json` (the CCADB list of shard URLs). Symbolic links, directories, FIFOs, devices
and any other name are a 404, so a link planted in the directory (to a key, say) is
never followed onto the public port.

The generator replaces a file by an atomic rename, so a new publication is a new
inode. Each request costs one `lstat`; the body is read, and its SHA-256 ETag
computed, once per publication (in a worker thread, so a large CRL does not stall
the event loop), not once per request.
"""

import hashlib
import logging
import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import trio

log = logging.getLogger("revocd.dataplane")

SERVED_SUFFIXES = (".crl", ".json")
# More distinct names than this and the least recently published are forgotten (they
# are read again on their next request); an issuer has at most a few hundred shards.
MAX_FILES = 4096


@dataclass(frozen=True, slots=True)
class CrlFile:
    body: bytes
    etag: bytes
    content_type: bytes
    mtime: int
    identity: tuple[int, int, int, int]  # (device, inode, size, mtime_ns)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def servable_name(name: str) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and not name.startswith(".")
        and name.endswith(SERVED_SUFFIXES)
    )


def _read(path: Path) -> tuple[bytes, os.stat_result] | None:
    """The file's bytes if it is a regular file reached without following a link."""
    try:
        # O_NONBLOCK: a FIFO swapped in after the caller's lstat must not block the read.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), st
    except OSError:
        return None
    finally:
        os.close(fd)


class CrlFiles:
    """The published CRL files of one directory, by name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[str, CrlFile] = {}

    async def get(self, name: str) -> CrlFile | None:
        if not servable_name(name):
            return None
        path = self.directory / name
        try:
            st = os.lstat(path)
        except OSError:
            self._files.pop(name, None)
            return None
        if not stat.S_ISREG(st.st_mode):
            # A link, directory or device: never served, and worth a line in the log.
            log.warning("CRL directory entry %s is not a regular file; not served", name)
            self._files.pop(name, None)
            return None
        held = self._files.get(name)
        if held is not None and held.identity == _identity(st):
            return held
        found = await trio.to_thread.run_sync(_read, path)
        if found is None:
            return None
        body, st = found
        ctype = (
            b"application/pkix-crl"
            if name.endswith(".crl")
            else (mimetypes.guess_type(name)[0] or "application/octet-stream").encode()
        )
        file = CrlFile(
            body,
            b'"' + hashlib.sha256(body).hexdigest().encode() + b'"',
            ctype,
            int(st.st_mtime),
            _identity(st),
        )
        if len(self._files) >= MAX_FILES and name not in self._files:
            self._files.pop(next(iter(self._files)))
        self._files[name] = file
        return file
