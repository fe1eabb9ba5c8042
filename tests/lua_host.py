"""Run revocd's store scripts without a server: Lua 5.1 (the version Valkey embeds,
through lupa) with `redis.call` answered from Python dicts.

Only the commands the scripts use are here, each with the reply shape Valkey gives
(a missing value is nil, `TIME` is two strings). It is for unit tests of the rules;
tests/integration runs the same scripts on a real valkey-server, which is what proves
this host agrees with it.
"""

from collections.abc import Sequence
from typing import Any

from lupa.lua51 import LuaRuntime, lua_type


class LuaHost:
    def __init__(self, clock_ms: int = 1_800_000_000_000) -> None:
        self.strings: dict[str, str] = {}
        self.hashes: dict[str, dict[str, str]] = {}
        self.zsets: dict[str, dict[str, float]] = {}
        self.streams: dict[str, list[dict[str, str]]] = {}
        self.published: list[tuple[str, str]] = []
        self.clock_ms = clock_ms
        self.lua = LuaRuntime(unpack_returned_tuples=False)
        self.lua.globals().redis = self.lua.table_from({"call": self._call})

    def run(self, script: str, keys: Sequence[str], args: Sequence[str | int]) -> list[Any]:
        g = self.lua.globals()
        g.KEYS = self.lua.table_from([str(k) for k in keys])
        g.ARGV = self.lua.table_from([str(a) for a in args])
        result = self.lua.execute(script)
        return self._py(result)

    def _py(self, value: Any) -> Any:
        if value is not None and lua_type(value) == "table":
            return [self._py(v) for v in value.values()]
        return value

    def _call(self, command: str, *args: Any) -> Any:
        name = command.upper()
        a = [str(x) if not isinstance(x, str) else x for x in args]
        if name == "TIME":
            return self.lua.table_from(
                [str(self.clock_ms // 1000), str((self.clock_ms % 1000) * 1000)]
            )
        if name == "HGET":
            return self.hashes.get(a[0], {}).get(a[1])
        if name == "HSET":
            h = self.hashes.setdefault(a[0], {})
            added = 0
            for field, value in zip(a[1::2], a[2::2], strict=True):
                added += field not in h
                h[field] = value
            return added
        if name == "HDEL":
            h = self.hashes.get(a[0], {})
            return sum(h.pop(f, None) is not None for f in a[1:])
        if name == "DEL":
            gone = 0
            for key in a:
                for space in (self.strings, self.hashes, self.zsets, self.streams):
                    gone += space.pop(key, None) is not None
            return gone
        if name == "ZADD":
            z = self.zsets.setdefault(a[0], {})
            added = 0
            for score, member in zip(a[1::2], a[2::2], strict=True):
                added += member not in z
                z[member] = float(score)
            return added
        if name == "ZREM":
            z = self.zsets.get(a[0], {})
            return sum(z.pop(m, None) is not None for m in a[1:])
        if name == "XADD":
            # XADD key MAXLEN ~ n * field value ...
            key, rest = a[0], a[1:]
            assert rest[0].upper() == "MAXLEN" and rest[1] == "~" and rest[3] == "*", rest
            fields = rest[4:]
            self.streams.setdefault(key, []).append(
                dict(zip(fields[::2], fields[1::2], strict=True))
            )
            return f"{self.clock_ms}-{len(self.streams[key])}"
        if name == "PUBLISH":
            self.published.append((a[0], a[1]))
            return 0
        raise NotImplementedError(f"redis.call({command!r}) is not in the test host")
