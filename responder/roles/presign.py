"""`revocd presign`: the pre-signer alone, for deployments that run it separately."""

import logging
from pathlib import Path

import trio

from ..audit.trail import AuditTrail
from ..config import load_config
from ..propagation.ledger import Ledger
from .system import serve_metrics, until_signalled
from .wiring import config_summary, configured_store, issuer_runtimes, presigner

log = logging.getLogger("revocd.service")


def presign_forever(
    config_path: str | Path, once: bool = False, metrics_port: int | None = None
) -> int:
    """`revocd presign`: the pre-signer alone, for deployments that run it separately."""
    config = load_config(config_path)
    serve_metrics(metrics_port, config.control.host)

    async def main() -> None:
        issuers = issuer_runtimes(config)
        async with configured_store(config) as store:
            trail = AuditTrail.from_settings(config.audit, config.audit_file)
            await trail.started("presign", config_summary(config))
            ledger = Ledger(store, config.propagation) if config.propagation.enabled else None
            signer = presigner(config, store, issuers, trail, ledger)
            async with trio.open_nursery() as nursery:
                if ledger is not None:
                    nursery.start_soon(ledger.run)
                if once:
                    await signer.sweep()
                    if ledger is not None:
                        await ledger.flush()
                else:
                    await signer.run()
                nursery.cancel_scope.cancel()

    try:
        trio.run(until_signalled, main)
    except KeyboardInterrupt:  # before the signal receiver is in place
        log.info("stopped")
    return 0
