"""docs/benchmarks.md is assembled from sections, one per benchmark script."""

import re
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
