"""From configuration to the running objects the roles wire together: issuers with their
signers and schedules, the CRL generator, the pre-signer; and what an auditor is told a
process started with."""

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio
from cryptography import x509

from .. import __version__
from ..answers.arena import Arena, ArenaError
from ..answers.issuers import IssuerRuntime
from ..audit.trail import AuditTrail
from ..config import Config, ConfigError, IssuerConfig
from ..domain.timing import HOUR, Schedule
from ..keys.lifecycle import hsm_key_ref
from ..observability import metrics
from ..presign import Presigner, PresignSettings
from ..signing import ResponderConfigError, ResponderIdentity, Signer, SignerError, SoftwareSigner
from ..signing.pkcs11 import Pkcs11Signer
from ..store import Store, StoreError
from ..store.connect import open_configured_store
from ..store.leases import Leases

if TYPE_CHECKING:
    from crlgen.generator import CrlGenerator

    from ..propagation.ledger import Ledger

log = logging.getLogger("revocd.service")


def issuer_runtimes(config: Config) -> list[IssuerRuntime]:
    """Every issuer of a resolved configuration, ready to answer."""
    return [issuer_runtime(i, config.certificates[i.name]) for i in config.issuers.values()]


def issuer_runtime(issuer: IssuerConfig, cert: x509.Certificate) -> IssuerRuntime:
    """Load the signing key and certificates of an issuer and check they fit together."""
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
        identity = ResponderIdentity(signer, cert, responder_cert)
    except ResponderConfigError as exc:
        raise ConfigError(f"{where}responder_certificate: {exc}") from exc
    return IssuerRuntime(
        issuer,
        identity,
        Schedule(validity=issuer.validity_hours * HOUR - 1),
        nonce=issuer.nonce,
        unknown=issuer.unknown,
        expired=issuer.expired,
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
    config: Config, store: Store, audit: AuditTrail | None = None, ledger: "Ledger | None" = None
) -> "CrlGenerator | None":
    """The CRL generator; each publication is recorded (the report's history), notes
    the ledger's CRL step and queues the shard's CDN purge when [[cdn.purge]] is set."""
    from crlgen.generator import CrlGenerator, issuer_crls

    from ..propagation.crl import publication_hook

    hook = publication_hook(store, ledger, bool(config.cdn.targets))
    crl_dir = config.server.crl_dir or config.state_dir / "crl"
    issuers = []
    for issuer in config.issuers.values():
        if issuer.crl is None:
            continue
        try:
            cert = config.certificates[issuer.name]
            crls = issuer_crls(issuer, cert, crl_signer(issuer), crl_dir)
            crls.on_published = hook
            issuers.append(crls)
        except ValueError as exc:
            raise ConfigError(f"issuers.{issuer.name}.crl: {exc}") from exc
    if not issuers:
        return None
    return CrlGenerator(store, issuers, audit, Leases(store, config.store.lease_seconds))


def crl_cdn(config: Config) -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    """CRL file name -> its cache tags, and -> its validity in seconds (for
    CDN-Cache-Control); the CCADB list of an issuer's CRLs too."""
    from crlgen.generator import file_name, shard_url

    from ..cdn.tags import crl_list_tag, crl_tag, issuer_tag

    tags: dict[str, tuple[str, ...]] = {}
    validity: dict[str, int] = {}
    for issuer in config.issuers.values():
        if issuer.crl is None:
            continue
        for shard in range(max(1, issuer.crl_shards)):
            name = file_name(shard_url(issuer.crl.url, shard))
            tags[name] = (issuer_tag(issuer.name), crl_tag(issuer.name, shard))
            validity[name] = issuer.crl.validity_hours * 3600 - 1
        index = f"{issuer.name}.crls.json"
        tags[index] = (issuer_tag(issuer.name), crl_list_tag(issuer.name))
        validity[index] = issuer.crl.republish_hours * 3600
    return tags, validity


def crl_schedule(config: Config) -> dict[str, int]:
    """CRL file name -> seconds between its planned publications."""
    from crlgen.generator import file_name, shard_url

    out = {}
    for issuer in config.issuers.values():
        if issuer.crl is not None:
            for shard in range(max(1, issuer.crl_shards)):
                out[file_name(shard_url(issuer.crl.url, shard))] = issuer.crl.republish_hours * 3600
    return out


@asynccontextmanager
async def configured_store(config: Config) -> AsyncIterator[Store]:
    """The store of a configuration, issuers registered (embedded when no store.url),
    starting a propagation ledger with each revocation it applies (unless disabled)."""
    async with open_configured_store(
        config.store, config.state_dir, config.issuers.values()
    ) as store:
        if config.propagation.enabled:
            store.ledger_seconds = config.propagation.retention_days * 86400
        yield store


def presigner(
    config: Config,
    store: Store,
    issuers: list[IssuerRuntime],
    audit: AuditTrail,
    ledger: "Ledger | None" = None,
) -> Presigner:
    """The pre-signer of `revocd serve` and of `revocd presign`, sharing the partitions
    with any other revocd process on the store by leases."""
    settings = PresignSettings(
        config.presign.sweep_interval_seconds,
        config.presign.batch,
        config.presign.concurrency,
    )
    return Presigner(
        store,
        issuers,
        settings,
        audit=audit,
        leases=Leases(store, config.store.lease_seconds),
        on_signed=ledger.signed if ledger is not None else None,
    )


def open_arena(config: Config, create: bool) -> Arena | None:
    """The host's shared answer cache: created empty by the serving process that owns
    it (`create`), attached to by its workers. None when server.shared_cache_mb is 0,
    or when it cannot be had (logged): GET answers are then cached per worker."""
    server = config.server
    if not server.shared_cache_mb or server.shared_cache_path is None:
        return None
    path = server.shared_cache_path
    try:
        if create:
            arena = Arena.create(path, server.shared_cache_mb << 20)
            log.info(
                "shared answer cache: %s, %d MiB (%d index slots)",
                path,
                server.shared_cache_mb,
                arena.layout.index_slots,
            )
            return arena
        return Arena.attach(path)
    except ArenaError as exc:
        log.error("%s; GET answers are cached in each worker instead", exc)
        return None


def service_ledger(config: Config, store: Store) -> "Ledger | None":
    from ..propagation.ledger import Ledger

    return Ledger(store, config.propagation) if config.propagation.enabled else None


async def queue_aia_purges(config: Config, store: Store) -> None:
    """Purge an issuer's AIA files at the CDNs when they differ from what the last
    start served (a new issuer certificate, another bundle)."""
    from ..cdn.tags import aia_tag
    from ..dataplane.aia import aia_digest, aia_files

    files = aia_files(config)
    for name in config.issuers:
        digest = aia_digest(files, name)
        key = f"rv:aia:{name}"
        try:
            before = (await store.get_strings([key]))[key]
            if before != digest:
                if before is not None:
                    await store.queue_purge([aia_tag(name)], f"aia {name} changed")
                await store.set_string(key, digest)
        except StoreError as exc:
            log.warning("AIA files of %s: change not checked (%s)", name, exc)
