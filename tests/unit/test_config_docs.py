"""docs/config.md and the configuration model agree: every key the model reads is
documented in its section, with the model's default (written once, in model.py)."""

import re
from enum import Enum
from pathlib import Path

import pytest

from responder.config import model
from responder.config.load import settings_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"
SECTIONS = {
    "Top level": model.Config,
    "`[server]`": model.ServerConfig,
    "`[server.limits]`": model.LimitsConfig,
    "`[control]`": model.ControlConfig,
    "`[store]`": model.StoreConfig,
    "`[issuers.<name>]`": model.IssuerConfig,
    "`[issuers.<name>.hsm]`": model.HsmConfig,
    "`[issuers.<name>.crl]`": model.CrlConfig,
    "`[presign]`": model.PresignConfig,
    "`[audit]`": model.AuditConfig,
    "`[cdn]`": model.CdnConfig,
    "`[[cdn.purge]]`": model.PurgeTargetConfig,
    "`[propagation]`": model.PropagationConfig,
    "`[probe]`": model.ProbeConfig,
    "`[inventory]`": model.InventoryConfig,
    "`[[siem]]`": model.SiemConfig,
}


def documented(heading: str) -> dict[str, str]:
    """key -> default cell of the table under `## <heading>`."""
    text = DOC.read_text()
    start = next(
        m.end() for m in re.finditer(r"^## (.*)$", text, re.M) if m.group(1).startswith(heading)
    )
    end = text.find("\n## ", start)
    rows: dict[str, str] = {}
    for line in text[start : end if end > 0 else None].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            for key in re.findall(r"`([a-z0-9_]+)`", cells[0]):
                rows[key] = cells[1]
    return rows


def spelled(value: object) -> str | None:
    """How the docs write a default, or None for defaults the docs describe in words."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, int):
        return str(value)
    if value == "":
        return "empty"
    if isinstance(value, str):
        return f"`{value}`"
    return None


@pytest.mark.parametrize("heading", list(SECTIONS))
def test_documented_defaults_are_the_models(heading):
    cls = SECTIONS[heading]
    rows = documented(heading)
    problems = []
    for key, f in settings_of(cls).items():
        if key not in rows:
            problems.append(f"{key}: not documented")
            continue
        want = spelled(f.default)
        cell = rows[key]
        if want is not None and not re.search(rf"(?<![\w.]){re.escape(want)}(?![\w.])", cell):
            problems.append(f"{key}: documented default {cell!r}, the model's is {want}")
    assert not problems, f"docs/config.md, {heading}: {problems}"


def test_every_setting_has_a_range_or_a_kind_the_loader_knows():
    for cls in SECTIONS.values():
        for f in settings_of(cls).values():
            low, high = f.metadata["low"], f.metadata["high"]
            assert (low is None) == (high is None), f"{cls.__name__}.{f.name}"
            if isinstance(f.default, int) and not isinstance(f.default, bool):
                assert low is not None, f"{cls.__name__}.{f.name}: a number needs its range"
                assert low <= f.default <= high, f"{cls.__name__}.{f.name}: default out of range"
