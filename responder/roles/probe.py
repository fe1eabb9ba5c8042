"""`revocd probe`: the prober (propagation/probe.py) as a command or a long-running
role next to `revocd serve`."""

import json
import logging
import sys
from pathlib import Path

import trio

from ..config import load_config
from ..propagation.probe import Prober, RoundReport
from .system import serve_metrics, until_signalled
from .wiring import configured_store

log = logging.getLogger("revocd.service")


def probe_command(
    config_path: str | Path, once: bool, connect_to: str = "", metrics_port: int | None = None
) -> int:
    config = load_config(config_path)
    serve_metrics(metrics_port, config.control.host)
    result: list[RoundReport] = []

    async def main() -> None:
        async with configured_store(config) as store:
            prober = Prober(store, config, connect_to=connect_to)
            if once:
                result.append(await prober.round())
                return
            await prober.run()

    try:
        trio.run(until_signalled, main)
    except KeyboardInterrupt:
        log.info("stopped")
    if once and result:
        json.dump(result[0].to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 1 if result[0].problems else 0
    return 0
