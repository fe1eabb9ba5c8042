"""The running responder: store, answer sources, data plane and control plane in one nursery.

`serve` runs the control plane and, with one worker, the data plane in this
process. With `server.workers > 1`, worker processes each run a data plane
on the same port (SO_REUSEPORT) with their own cache and change subscription,
and this process keeps the control plane.
"""

import contextlib
import hashlib
import logging
import os
import resource
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from cryptography import x509
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from . import __version__
from .answers.sources import (
    AnswerCache,
    IssuerRuntime,
    LoopLag,
    MissBatcher,
    build_chain,
    follow_changes,
)
from .audit.trail import AuditTrail
from .config import Config, ConfigError, HsmConfig, IssuerConfig, load_config
from .control.app import ControlApp
from .dataplane.app import DataPlane
from .dataplane.workers import WorkerPool
from .domain.timing import HOUR, Schedule
from .http.protocol import Limits
from .http.server import HttpServer
from .ingest import Ingestor
from .keys.lifecycle import CertificateWatcher
from .observability import metrics
from .observability.logs import WORKER_ENV, setup_logging
from .observability.summary import log_summaries
from .presign import Presigner, PresignSettings
from .signing import ResponderConfigError, ResponderIdentity, Signer, SignerError, SoftwareSigner
from .signing.pkcs11 import Pkcs11KeyRef, Pkcs11Signer

if TYPE_CHECKING:
    from crlgen.generator import CrlGenerator
from .store import Store
from .store.connect import open_configured_store
from .store.leases import Leases

log = logging.getLogger("revocd.service")


def hsm_key_ref(hsm: HsmConfig) -> Pkcs11KeyRef:
    """The configured place of a PKCS#11 key, in the form the signer opens it."""
    return Pkcs11KeyRef(
        hsm.module,
        key_label=hsm.key_label,
        key_id=hsm.key_id,
        token_label=hsm.token_label,
        token_serial=hsm.token_serial,
        pin_file=hsm.pin_file,
        pin_env=hsm.pin_env,
    )


def issuer_runtime(issuer: IssuerConfig) -> IssuerRuntime:
    """Load the signing key and certificates of an issuer and check they fit together."""
    assert issuer.cert is not None
    where = f"issuers.{issuer.name}."
    signer: Signer
    if issuer.hsm is not None:
        hsm = issuer.hsm
        ref = hsm_key_ref(hsm)
        try:
            signer = Pkcs11Signer(
                ref,
                rsa_padding=issuer.rsa_padding,
                timeout=hsm.timeout_ms / 1000,
                queue_size=hsm.queue_size,
            ).start()
        except SignerError as exc:
            raise ConfigError(f"{where}hsm: {exc}") from exc
    else:
        key_path = issuer.responder_key or issuer.key
        if key_path is None:
            raise ConfigError(
                f"{where}key: give the issuer key, responder_certificate and responder_key, "
                "or an [hsm] table"
            )
        try:
            signer = SoftwareSigner.from_pem_file(
                key_path,
                passphrase_file=issuer.key_passphrase_file,
                passphrase_env=issuer.key_passphrase_env,
                rsa_padding=issuer.rsa_padding,  # type: ignore[arg-type]
            )
        except SignerError as exc:
            which = "responder_key" if issuer.responder_key else "key"
            raise ConfigError(f"{where}{which}: {exc}") from exc
    responder_cert = None
    if issuer.responder_certificate is not None:
        try:
            responder_cert = x509.load_pem_x509_certificate(
                issuer.responder_certificate.read_bytes()
            )
        except ValueError as exc:
            raise ConfigError(f"{where}responder_certificate: not a PEM certificate") from exc
    try:
        identity = ResponderIdentity(signer, issuer.cert, responder_cert)
    except ResponderConfigError as exc:
        raise ConfigError(f"{where}responder_certificate: {exc}") from exc
    return IssuerRuntime(
        issuer,
        identity,
        Schedule(validity=issuer.validity_hours * HOUR - 1),
        echo_nonce=issuer.nonce == "echo",
        unknown_is_unauthorized=issuer.unknown == "unauthorized",
    )


def config_summary(config: Config) -> dict[str, object]:
    """What an auditor needs to know about the configuration a process started with."""
    digest = None
    if config.source is not None:
        digest = hashlib.sha256(config.source.read_bytes()).hexdigest()
    return {
        "config_file": str(config.source) if config.source else None,
        "config_sha256": digest,
        "issuers": sorted(config.issuers),
        "tokens": {t.name: sorted(t.issuers) for t in config.tokens.values()},
        "version": __version__,
    }


async def watch_store(store: Store, interval: float = 5.0) -> None:
    """revocd_store_up for dashboards and the StoreUnreachable alert."""
    was_up = True
    while True:
        up = False
        with trio.move_on_after(2):
            try:
                up = await store.ping()
            except Exception:  # any failure to ping is "down"; the reason is logged once
                log.debug("store ping failed", exc_info=True)
        metrics.STORE_UP.set(1 if up else 0)
        if up != was_up:
            (log.info if up else log.error)("store %s", "reachable again" if up else "unreachable")
            was_up = up
        await trio.sleep(interval)


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one: every connection is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def _stop_on_signals(scope: trio.CancelScope) -> None:
    """SIGTERM (systemd, container runtimes) and SIGINT (Ctrl-C) stop revocd cleanly: the
    nursery unwinds, so the embedded store and the workers are stopped too. Receiving
    SIGINT here, rather than as trio's KeyboardInterrupt, matters: KeyboardInterrupt is
    raised inside whatever code runs at that instant, and a library that swallows it
    leaves the service running."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("%s: stopping", signal.Signals(signum).name)
            scope.cancel()
            return


async def until_signalled(main: Callable[[], Awaitable[None]]) -> None:
    """Run `main` until it returns or SIGTERM/SIGINT arrives."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signals, nursery.cancel_scope)
        await main()
        nursery.cancel_scope.cancel()


def crl_signer(issuer: IssuerConfig) -> Signer:
    """The key that signs an issuer's CRLs (the issuer's own), from a file or an HSM."""
    assert issuer.crl is not None
    where = f"issuers.{issuer.name}.crl."
    crl = issuer.crl
    try:
        if crl.hsm is not None:
            h = crl.hsm
            return Pkcs11Signer(
                hsm_key_ref(h), timeout=h.timeout_ms / 1000, queue_size=h.queue_size
            ).start()
        assert crl.key is not None
        return SoftwareSigner.from_pem_file(
            crl.key, passphrase_file=crl.key_passphrase_file, passphrase_env=crl.key_passphrase_env
        )
    except SignerError as exc:
        raise ConfigError(f"{where}{'hsm' if crl.hsm else 'key'}: {exc}") from exc


def crl_generator(
    config: Config, store: Store, audit: AuditTrail | None = None
) -> "CrlGenerator | None":
    from crlgen.generator import CrlGenerator, issuer_crls

    crl_dir = config.server.crl_dir or config.state_dir / "crl"
    issuers = []
    for issuer in config.issuers.values():
        if issuer.crl is None:
            continue
        try:
            issuers.append(issuer_crls(issuer, crl_signer(issuer), crl_dir))
        except ValueError as exc:
            raise ConfigError(f"issuers.{issuer.name}.crl: {exc}") from exc
    if not issuers:
        return None
    return CrlGenerator(store, issuers, audit, Leases(store, config.store.lease_seconds))


def crl_schedule(config: Config) -> dict[str, int]:
    """CRL file name -> seconds between its planned publications."""
    from crlgen.generator import file_name, shard_url

    out = {}
    for issuer in config.issuers.values():
        if issuer.crl is not None:
            for shard in range(max(1, issuer.crl_shards)):
                out[file_name(shard_url(issuer.crl.url, shard))] = issuer.crl.republish_hours * 3600
    return out


def data_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    return sock


@dataclass
class Running:
    """What a started service exposes to its caller (the demo, tests)."""

    store: Store
    ingest: Ingestor
    issuers: list[IssuerRuntime]
    data_port: int
    control_port: int
    audit: AuditTrail


async def run_data_plane(
    config: Config,
    store: Store,
    issuers: list[IssuerRuntime],
    sock: socket.socket,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with trio.open_nursery() as nursery:
        cache = AnswerCache(config.server.cache_entries)
        batcher = MissBatcher(store)
        nursery.start_soon(batcher.run)
        nursery.start_soon(follow_changes, store, cache)
        limits = config.server.limits
        loop = LoopLag(limits.live_sign_loop_lag_ms / 1000)
        nursery.start_soon(loop.run)
        chain = build_chain(
            issuers,
            cache,
            store,
            batcher,
            nursery,
            live_max_pending=limits.live_sign_max_pending,
            live_deadline=limits.live_sign_deadline_ms / 1000,
            loop=loop,
        )
        crl_dir = config.server.crl_dir
        plane = DataPlane(
            chain,
            config.server.ocsp_path,
            crl_dir,
            cache=cache,
            crl_republish=crl_schedule(config),
            max_age_cap=config.server.cache_max_age_seconds,
            shed_pause=limits.shed_pause_ms / 1000,
        )
        server = HttpServer(
            plane,
            Limits(
                max_header_bytes=limits.max_header_bytes,
                max_body_bytes=limits.max_body_bytes,
                header_timeout=limits.header_timeout,
                body_timeout=limits.body_timeout,
                send_timeout=limits.send_timeout,
                idle_timeout=limits.idle_timeout,
                max_connections=limits.max_connections,
                max_pipelined=limits.max_pipelined,
            ),
            fast=plane.fast,
            hold=loop.hold,
        )
        nursery.start_soon(plane.flush_metrics)
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
        async with Store.open(store_url, config.store) as store:
            await store.register_issuers(config.issuers.values())
            issuers = [issuer_runtime(i) for i in config.issuers.values()]
            async with trio.open_nursery() as nursery:
                await nursery.start(run_data_plane, config, store, issuers, sock)
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
    issuers = [issuer_runtime(i) for i in config.issuers.values()]
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
    trail = AuditTrail.from_config(config)
    if not await trail.started("serve", config_summary(config)):
        raise ConfigError(f"audit.file: cannot write {config.audit_file}")
    async with open_configured_store(config) as store:
        ingest = Ingestor(store, config.issuers, config.clock_skew_seconds)
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
        )
        try:
            async with trio.open_nursery() as nursery:
                if pool is None:
                    await nursery.start(run_data_plane, config, store, issuers, sock)
                else:
                    await nursery.start(pool.run)
                    # The workers listen on the port now; this socket only reserved it.
                    sock.close()
                hconf = HypercornConfig()
                hconf.bind = [f"{config.control.host}:{config.control.port}"]
                hconf.accesslog = None
                hconf.errorlog = logging.getLogger("revocd.control.server")
                nursery.start_soon(_stop_on_signals, nursery.cancel_scope)
                nursery.start_soon(CertificateWatcher(issuers, audit=trail).run)
                nursery.start_soon(trail.flush_suppressed)
                nursery.start_soon(watch_store, store)
                if config.server.log_summary_seconds:
                    nursery.start_soon(log_summaries, config.server.log_summary_seconds)
                crls = crl_generator(config, store, trail) if config.server.crl_generator else None
                if crls is not None:
                    await nursery.start(crls.run)
                if config.presign.enabled:
                    presigner = Presigner(
                        store,
                        issuers,
                        PresignSettings(
                            config.presign.sweep_interval_seconds,
                            config.presign.batch,
                            config.presign.concurrency,
                        ),
                        audit=trail,
                        leases=Leases(store, config.store.lease_seconds),
                    )
                    nursery.start_soon(presigner.run)
                binds = await nursery.start(hypercorn_serve, control, hconf)
                control_port = int(binds[0].rsplit(":", 1)[1])
                running = Running(store, ingest, issuers, data_port, control_port, trail)
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


def serve_metrics(port: int | None, host: str) -> None:
    """/metrics for `revocd presign` and `revocd crl run`, which have no control plane."""
    if port is not None:
        from prometheus_client import start_http_server

        start_http_server(port, host)
        log.info("metrics on http://%s:%d/metrics", host, port)


def presign_forever(
    config_path: str | Path, once: bool = False, metrics_port: int | None = None
) -> int:
    """`revocd presign`: the pre-signer alone, for deployments that run it separately."""
    config = load_config(config_path)
    serve_metrics(metrics_port, config.control.host)

    async def main() -> None:
        issuers = [issuer_runtime(i) for i in config.issuers.values()]
        async with open_configured_store(config) as store:
            settings = PresignSettings(
                config.presign.sweep_interval_seconds,
                config.presign.batch,
                config.presign.concurrency,
            )
            trail = AuditTrail.from_config(config)
            await trail.started("presign", config_summary(config))
            presigner = Presigner(
                store,
                issuers,
                settings,
                audit=trail,
                leases=Leases(store, config.store.lease_seconds),
            )
            if once:
                await presigner.sweep()
            else:
                await presigner.run()

    try:
        trio.run(until_signalled, main)
    except KeyboardInterrupt:  # before the signal receiver is in place
        log.info("stopped")
    return 0


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
        async with open_configured_store(config) as store:
            trail = AuditTrail.from_config(config) if action == "run" else None
            generator = crl_generator(config, store, trail)
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
