"""Strict JSON for what the CA sends: bounded nesting, no duplicated keys.

Python's json module recurses once per nesting level (100,000 nested arrays end in a
RecursionError, which the control plane answered as a 500) and keeps the last of
duplicated keys (`"serial": X, "serial": Y` silently became Y). An event that two
parsers can read differently is one an attacker can smuggle past a reviewer, so both
are refused before anything is applied, each with a message naming the problem.
"""

import json
import re
from typing import Any

# An events batch is {"events": [{...}]}: three levels. Eight leaves room for what a
# CA might add later and is nowhere near what the json module can take.
MAX_DEPTH = 8


class JsonTooDeep(ValueError):
    """Nesting beyond the limit: a 400."""


class DuplicateKey(ValueError):
    """An object names a key twice: a 422 naming the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key}: given more than once in one object")
        self.key = key


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def nesting_depth(text: str, limit: int) -> int:
    """The deepest nesting of arrays and objects in `text`, outside strings; stops
    counting (and returns more than `limit`) as soon as the limit is passed. Strings
    are cut out and brackets found by regular expressions, so an 8 MiB batch costs
    milliseconds, not a Python loop over every character."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        else:
            depth -= 1
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON, refusing deep nesting (JsonTooDeep) and duplicated keys (DuplicateKey);
    anything else malformed is the json module's ValueError."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if nesting_depth(text, max_depth) > max_depth:
        raise JsonTooDeep(f"body: JSON nested deeper than {max_depth} levels")
    return json.loads(text, object_pairs_hook=_no_duplicates)
