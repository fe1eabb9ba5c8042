"""`revocd serve`: the control plane, the data plane (in this process, or in supervised
worker processes sharing the port), and the background work (pre-signer, CRL
generator, certificate and store watchers), all in one nursery.

With `server.workers > 1`, worker processes each run a data plane on the same port
(SO_REUSEPORT) with their own cache and change subscription, and this process keeps
the control plane.

Each process subscribes to the store's changes once (changes.py: ChangeHub) and fans
them out to what it runs: the answer cache, the pre-signer, the CRL generator.
"""

import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from ..answers.arena import Arena
from ..answers.cache import AnswerCache
from ..answers.chain import build_chain
from ..answers.issuers import IssuerRuntime
from ..answers.presigned import MissBatcher
from ..answers.shedding import LoopLag
from ..audit.trail import AuditTrail, watch_never_issued
from ..cdn.purger import Purger
from ..cdn.tags import CdnHeaders
from ..changes import ChangeHub, invalidate_cache, own_arena
from ..config import Config, ConfigError, load_config
from ..control.app import ControlApp
from ..dataplane.aia import aia_files
from ..dataplane.app import DataPlane, http_server
from ..dataplane.workers import WorkerPool
from ..http.protocol import Limits
from ..http.reactor import ArenaReader
from ..ingest import Ingestor
from ..inventory.watch import InventoryWatcher
from ..keys.lifecycle import CertificateWatcher
from ..observability.logs import WORKER_ENV, setup_logging
from ..observability.summary import log_summaries
from ..propagation.ledger import Ledger
from ..siem.exporter import Sink
from ..store import Store
from ..store.leases import Leases
from .system import data_socket, raise_fd_limit, stop_on_signals
from .wiring import (
    config_summary,
    configured_store,
    crl_cdn,
    crl_generator,
    crl_schedule,
    issuer_runtimes,
    open_arena,
    presigner,
    queue_aia_purges,
    service_ledger,
    watch_store,
)

log = logging.getLogger("revocd.service")


@dataclass
class Running:
    """What a started service exposes to its caller (the demo, tests)."""

    store: Store
    ingest: Ingestor
    issuers: list[IssuerRuntime]
    data_port: int
    control_port: int
    audit: AuditTrail
    inventory: InventoryWatcher | None = None  # None: inventory.enabled = false


async def run_data_plane(
    config: Config,
    store: Store,
    issuers: list[IssuerRuntime],
    sock: socket.socket,
    hub: ChangeHub,
    arena: Arena | None = None,
    ledger: Ledger | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The data plane of one process; `hub` is the process's change feed, whose run
    the caller owns (the cache's channel is taken here, before the hub starts);
    `arena` the host's shared answer cache, if there is one; `ledger` notes the first
    `revoked` answer served for each revocation (its run is the caller's too)."""
    async with trio.open_nursery() as nursery:
        cache = AnswerCache(config.server.cache_entries)
        batcher = MissBatcher(store)
        nursery.start_soon(batcher.run)
        # Invalidations must never wait behind a slow consumer: a deep buffer, and a
        # Resync (clear) should it ever fill.
        nursery.start_soon(invalidate_cache, hub.subscribe("cache", buffer=4096), cache)
        limits = config.server.limits
        loop = LoopLag(limits.live_sign_loop_lag_ms / 1000)
        nursery.start_soon(loop.run)
        chain, inline = build_chain(
            issuers,
            cache,
            store,
            batcher,
            nursery,
            live_max_pending=limits.live_sign_max_pending,
            live_deadline=limits.live_sign_deadline_ms / 1000,
            loop=loop,
            shared=arena,
        )
        crl_dir = config.server.crl_dir
        crl_tags, crl_validity = crl_cdn(config)
        plane = DataPlane(
            chain,
            config.server.ocsp_path,
            crl_dir,
            cache=cache,
            crl_republish=crl_schedule(config),
            max_age_cap=config.server.cache_max_age_seconds,
            shed_pause=limits.shed_pause_ms / 1000,
            arena=ArenaReader(arena) if arena is not None else None,
            inline=inline,
            cdn=CdnHeaders(config.cdn.tag_header, config.cdn.cdn_max_age_seconds),
            issuers=issuers,
            crl_tags=crl_tags,
            crl_validity=crl_validity,
            aia=aia_files(config),
            on_revoked=ledger.note if ledger is not None else None,
        )
        http_limits = Limits(
            max_header_bytes=limits.max_header_bytes,
            max_body_bytes=limits.max_body_bytes,
            header_timeout=limits.header_timeout,
            body_timeout=limits.body_timeout,
            send_timeout=limits.send_timeout,
            idle_timeout=limits.idle_timeout,
            max_connections=limits.max_connections,
            max_pipelined=limits.max_pipelined,
        )
        server = http_server(plane, http_limits, config.server.reactor, hold=loop.hold)
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        await nursery.start(server.serve, [listener])
        task_status.started()


def _worker_main(config_path: str, store_url: str, port: int, index: int, ready: object) -> None:
    """A data plane worker process (spawned): its own socket on the shared port."""
    os.environ[WORKER_ENV] = str(index)
    setup_logging("INFO")
    config = load_config(config_path)
    raise_fd_limit()
    sock = data_socket(config.server.host, port, True)

    async def main() -> None:
        # The main process created the arena before starting the workers; a worker
        # started again later finds it warm.
        arena = open_arena(config, create=False)
        async with Store.open(store_url, config.store) as store:
            await store.register_issuers(config.issuers.values())
            issuers = issuer_runtimes(config)
            async with trio.open_nursery() as nursery:
                hub = ChangeHub(store, config.issuers)
                ledger = service_ledger(config, store)
                if ledger is not None:
                    nursery.start_soon(ledger.run)
                await nursery.start(
                    run_data_plane, config, store, issuers, sock, hub, arena, ledger
                )
                await nursery.start(hub.run)
                nursery.start_soon(CertificateWatcher(issuers).run)
                nursery.start_soon(watch_store, store)
                if config.server.log_summary_seconds:
                    nursery.start_soon(log_summaries, config.server.log_summary_seconds)
                ready.set()  # type: ignore[attr-defined]

    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main)


async def run_service(
    config: Config,
    on_ready: Callable[[Running], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    issuers = issuer_runtimes(config)
    fds = raise_fd_limit()
    if fds < config.server.limits.max_connections + 256:
        log.warning(
            "open-files limit %d is below server.limits.max_connections %d; connections beyond "
            "it will be refused by the kernel",
            fds,
            config.server.limits.max_connections,
        )
    if config.server.crl_dir is not None:
        config.server.crl_dir.mkdir(parents=True, exist_ok=True)
    trail = AuditTrail.from_settings(config.audit, config.audit_file)
    if not await trail.started("serve", config_summary(config)):
        raise ConfigError(f"audit.file: cannot write {config.audit_file}")
    # Created (empty) before any worker starts, so no worker reads answers an earlier
    # run left; this process owns it: its change feed keeps it right.
    arena = open_arena(config, create=True)
    async with configured_store(config) as store:
        ingest = Ingestor(
            store, config.issuers, config.clock_skew_seconds, certificates=config.certificates
        )
        sock = data_socket(config.server.host, config.server.port, config.server.workers > 1)
        data_port = sock.getsockname()[1]
        pool = None
        if config.server.workers > 1:
            if config.source is None:
                raise ConfigError("server.workers: more than one worker needs a config file")
            pool = WorkerPool(
                config.server.workers, _worker_main, (str(config.source), store.url, data_port)
            )
        control = ControlApp(
            store,
            ingest,
            issuers,
            config.tokens,
            config.control.max_body_bytes,
            audit=trail,
            data_plane=(lambda: (pool.serving, pool.count)) if pool is not None else None,
            propagation=config.propagation,
        )
        try:
            async with trio.open_nursery() as nursery:
                hub = ChangeHub(store, config.issuers)
                if arena is not None:
                    nursery.start_soon(own_arena, hub.subscribe("arena", buffer=4096), arena)
                ledger = service_ledger(config, store)
                if ledger is not None:
                    nursery.start_soon(ledger.run)
                if config.cdn.targets:
                    purger = Purger(store, config)
                    nursery.start_soon(purger.run, hub.subscribe("purge", buffer=1024))
                    await queue_aia_purges(config, store)
                if pool is None:
                    await nursery.start(
                        run_data_plane, config, store, issuers, sock, hub, arena, ledger
                    )
                else:
                    await nursery.start(pool.run)
                    # The workers listen on the port now; this socket only reserved it.
                    sock.close()
                hconf = HypercornConfig()
                hconf.bind = [f"{config.control.host}:{config.control.port}"]
                hconf.accesslog = None
                hconf.errorlog = logging.getLogger("revocd.control.server")
                nursery.start_soon(stop_on_signals, nursery.cancel_scope)
                nursery.start_soon(CertificateWatcher(issuers, audit=trail).run)
                nursery.start_soon(trail.flush_suppressed)
                nursery.start_soon(watch_never_issued, trail, config.audit.never_issued_per_minute)
                nursery.start_soon(watch_store, store)
                watcher = None
                if config.inventory.enabled:
                    watcher = InventoryWatcher(
                        store,
                        list(config.issuers),
                        config.inventory,
                        trail,
                        Leases(store, ttl=config.store.lease_seconds),
                    )
                    nursery.start_soon(watcher.run)
                for sink in config.siem:
                    nursery.start_soon(Sink(sink, config.audit_file, config.state_dir).run)
                if config.server.log_summary_seconds:
                    nursery.start_soon(log_summaries, config.server.log_summary_seconds)
                crls = (
                    crl_generator(config, store, trail, ledger)
                    if config.server.crl_generator
                    else None
                )
                if crls is not None:
                    await nursery.start(crls.run, hub.subscribe("crl", records=True, buffer=256))
                if config.presign.enabled:
                    nursery.start_soon(
                        presigner(config, store, issuers, trail, ledger).run,
                        hub.subscribe("presign", records=True),
                    )
                await nursery.start(hub.run)
                binds = await nursery.start(hypercorn_serve, control, hconf)
                control_port = int(binds[0].rsplit(":", 1)[1])
                running = Running(store, ingest, issuers, data_port, control_port, trail, watcher)
                log.info(
                    "revocd ready: data plane http://%s:%d%s (%d worker(s)), control plane %s",
                    config.server.host,
                    data_port,
                    config.server.ocsp_path,
                    config.server.workers,
                    binds[0],
                )
                task_status.started(running)
                if on_ready is not None:
                    await on_ready(running)
        finally:
            sock.close()
            if arena is not None:
                arena.remove()
            with trio.CancelScope(shield=True):
                await trail.record("service.stopped", role="serve")


def serve_forever(
    config_path: str | Path,
    workers: int | None = None,
    presign: bool = True,
    crl: bool = True,
) -> int:
    """`revocd serve`; --no-presign and --no-crl leave those to `revocd presign` and
    `revocd crl run` deployments of their own."""
    config = load_config(config_path)
    if workers is not None:
        if not 1 <= workers <= 256:
            raise ConfigError("--workers: must be between 1 and 256")
        config = replace(config, server=replace(config.server, workers=workers))
    if not presign:
        config = replace(config, presign=replace(config.presign, enabled=False))
    if not crl:
        config = replace(config, server=replace(config.server, crl_generator=False))
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the signal receiver
        trio.run(run_service, config)
    log.info("stopped")
    return 0
