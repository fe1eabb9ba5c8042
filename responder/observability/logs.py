"""The operational log stream: JSON lines (one object per record) or plain text.

Services (`serve`, `presign`, `crl run`) log JSON by default so log shippers need no
parsing rules; interactive commands log text. `--log-format` or REVOCD_LOG_FORMAT
overrides either. Structured values go in `extra={"fields": {...}}` and become
top-level keys. The security/audit stream is separate (responder/audit/log.py).
"""

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

FORMAT_ENV = "REVOCD_LOG_FORMAT"
WORKER_ENV = "REVOCD_WORKER"


class JsonFormatter(logging.Formatter):
    def __init__(self, worker: str | None = None) -> None:
        super().__init__()
        self.worker = worker
        self.pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": self.pid,
        }
        if self.worker is not None:
            out["worker"] = self.worker
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"), default=str)


def setup_logging(level: str | int = "INFO", fmt: str | None = None) -> None:
    """Configure the root logger once per process (workers call it again after spawn)."""
    fmt = fmt or os.environ.get(FORMAT_ENV) or "text"
    worker = os.environ.get(WORKER_ENV)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(worker))
    else:
        tag = f" worker{worker}" if worker is not None else ""
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s{tag} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # coredis reports routine script-cache reloads at INFO; revocd logs store trouble itself.
    logging.getLogger("coredis").setLevel(max(logging.WARNING, root.level))


class LogBudget:
    """At most `per_minute` lines of one kind a minute; the rest are counted elsewhere
    only, so a request that triggers a bug cannot be replayed to fill the disk."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._minute = -1
        self._used = 0

    def allow(self) -> bool:
        minute = int(self.clock() // 60)
        if minute != self._minute:
            self._minute, self._used = minute, 0
        self._used += 1
        return self._used <= self.per_minute
