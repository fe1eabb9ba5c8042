"""`revocd crl run` (the CRL generator alone) and `revocd crl build` (one CRL to a file)."""

import logging
import time
from pathlib import Path

import trio

from ..audit.trail import AuditTrail
from ..config import ConfigError, load_config
from ..propagation.ledger import Ledger
from .system import serve_metrics, until_signalled
from .wiring import config_summary, configured_store, crl_generator

log = logging.getLogger("revocd.service")


def crl_command(
    config_path: str | Path,
    action: str,
    issuer: str | None,
    out: str | None,
    shard: int,
    metrics_port: int | None = None,
) -> int:
    """`revocd crl run` (the generator alone) and `revocd crl build` (one CRL to a file)."""
    config = load_config(config_path)
    serve_metrics(metrics_port, config.control.host)

    async def main() -> None:
        async with configured_store(config) as store:
            trail = (
                AuditTrail.from_settings(config.audit, config.audit_file)
                if action == "run"
                else None
            )
            ledger = (
                Ledger(store, config.propagation)
                if action == "run" and config.propagation.enabled
                else None
            )
            generator = crl_generator(config, store, trail, ledger)
            if generator is None:
                raise ConfigError("issuers.<name>.crl: no issuer has a [crl] table")
            if action == "run":
                assert trail is not None
                await trail.started("crl", config_summary(config))
                await generator.run()
                return
            target = generator.issuers.get(issuer or "")
            if target is None:
                raise ConfigError(f"--issuer: {issuer!r} has no [crl] table")
            await target.load(store)
            from crlgen.builder import build_crl
            from crlgen.publish import crl_number

            now = int(time.time())
            url = target.url(shard)
            der = await build_crl(
                target.issuer,
                target.shards[shard],
                crl_number(now, None),
                now,
                now + target.crl.validity_hours * 3600 - 1,
                url if target.count > 1 else None,
            )
            Path(out or "-").write_bytes(der)
            log.info("wrote %s: %d entries", out, len(target.shards[shard]))

    try:
        trio.run(until_signalled, main)
    except KeyboardInterrupt:  # before the signal receiver is in place
        log.info("stopped")
    return 0
