"""docs/benchmarks.md is assembled from sections, one per benchmark script."""

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

HEADER = "# Benchmarks\n"


def replace_section(path: Path, name: str, section_lines: list[str]) -> None:
    """Put `section_lines` between this benchmark's markers, replacing what was there."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = "\n".join([start, *section_lines, end])
    text = path.read_text() if path.exists() else HEADER
    if start in text and end in text:
        text = re.sub(
            re.escape(start) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S
        )
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    print(f"wrote {path}")


def cpu_model() -> str:
    """The processor's model name, for the line saying where figures were measured."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


@contextlib.contextmanager
def pinned_valkey() -> Iterator[tuple[str, Path]]:
    """An embedded valkey-server as revocd runs it (AOF, appendfsync always) pinned to
    core 0, this process to core 1 (where the machine has two): (its URL, a temporary
    directory beside it). Stopped on the way out."""
    from responder.store import ValkeyProcess

    with tempfile.TemporaryDirectory() as tmp:
        server = ValkeyProcess(Path(tmp) / "valkey").start()
        try:
            assert server.process is not None
            if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
                os.sched_setaffinity(server.process.pid, {0})
                os.sched_setaffinity(0, {1})
            yield server.url, Path(tmp)
        finally:
            server.stop()
