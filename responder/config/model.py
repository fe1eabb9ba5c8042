"""The configuration model: frozen dataclasses, an Enum for every choice, and each
default written once, here, with its range and the reason for it.

`setting(default, low, high, key=...)` is a field the loader (load.py) reads from the
TOML file: `key` when the TOML spelling differs from the field's name, `low`/`high`
the accepted range of a number. docs/config.md documents every key, and
tests/unit/test_config_docs.py checks that its defaults are these.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509

from ..domain.answering import ExpiredAnswer, NoncePolicy, UnknownAnswer
from ..http.protocol import Limits as HttpLimits
from ..policy import Policy

_HTTP = HttpLimits()


def setting(
    default: Any, low: float | None = None, high: float | None = None, key: str | None = None
) -> Any:
    return field(default=default, metadata={"low": low, "high": high, "key": key})


class RsaPadding(StrEnum):
    PKCS1V15 = "pkcs1v15"  # what every OCSP client verifies
    PSS = "pss"


@dataclass(frozen=True)
class StoreConfig:
    url: str = setting("")  # empty: the embedded valkey-server under state_dir
    replicas: int = setting(0, 0, 16)  # replicas that must hold a write before the ack
    # Time an acknowledgement may wait for WAITAOF: beyond it the events are `failed`.
    durability_timeout_ms: int = setting(2000, 10, 60_000)
    # Entries kept per partition's change stream (enough for any subscriber's restart).
    feed_maxlen: int = setting(100_000, 100, 10_000_000)
    # Several revocd processes on one store split the pre-signing by partition leases;
    # a dead process's share is taken over within this many seconds.
    lease_seconds: int = setting(30, 2, 3600)


@dataclass(frozen=True)
class HsmConfig:
    """A signing key in a PKCS#11 module."""

    module: str
    token_label: str | None = setting(None)
    token_serial: str | None = setting(None)
    key_label: str | None = setting(None)
    key_id: bytes | None = None  # read as hex by the loader
    pin_file: Path | None = None
    pin_env: str | None = setting(None)
    # A signature the module has not returned by then is an error (tryLater live).
    timeout_ms: int = setting(2000, 10, 60_000)
    # Signatures waiting for the module; beyond it live requests get tryLater at once.
    queue_size: int = setting(10_000, 1, 1_000_000)


@dataclass(frozen=True)
class CrlConfig:
    """How an issuer's CRLs are made and where they go."""

    key: Path | None = None  # the issuer's key, which signs its CRLs...
    hsm: HsmConfig | None = None  # ...or the same key in a PKCS#11 module
    key_passphrase_file: Path | None = None
    key_passphrase_env: str | None = setting(None)
    url: str = ""  # full CRL (one shard) or shard URL template with {shard}; required
    # nextUpdate - thisUpdate; BR 4.9.7: at most 10 days for subscriber CRLs.
    validity_hours: int = setting(168, 1, 239)
    # Planned publication interval; BR 4.9.7: at least every 7 days. The loader lowers
    # the default to half the validity when the validity is short.
    republish_hours: int = setting(72, 1, 168)
    # Revocations arriving within this long are published in one CRL.
    debounce_seconds: float = setting(2.0, 0, 3600)
    retention_days: int | None = setting(None, 0, 36500)  # None: the policy's default
    s3_bucket: str | None = setting(None)  # also publish to S3-compatible storage
    s3_prefix: str = setting("")
    s3_endpoint_url: str | None = setting(None)
    s3_region: str | None = setting(None)


@dataclass(frozen=True)
class IssuerConfig:
    name: str
    certificate: Path
    policy: Policy = setting(Policy.TLS)
    # Store partitions: fixed once registered; docs/store.md "Sizing" (16,384 slots).
    partitions: int = setting(64, 1, 16384)
    crl_shards: int = setting(1, 1, 4096)
    key: Path | None = None  # the issuer signs its own answers
    responder_certificate: Path | None = None  # or a delegated responder does
    responder_key: Path | None = None
    key_passphrase_file: Path | None = None
    key_passphrase_env: str | None = setting(None)
    rsa_padding: RsaPadding = setting(RsaPadding.PKCS1V15)
    # Answer validity; BR 4.9.10: between 8 hours and 10 days.
    validity_hours: int = setting(96, 8, 240)
    nonce: NoncePolicy = setting(NoncePolicy.ECHO)
    unknown: UnknownAnswer = setting(UnknownAnswer.UNKNOWN)
    # A certificate past its notAfter: its last status, or `unauthorized`
    expired: ExpiredAnswer = setting(ExpiredAnswer.LAST_STATUS)
    hsm: HsmConfig | None = None
    crl: CrlConfig | None = None
    # AIA (RFC 5280 4.2.2.1): the caIssuers URL(s) the issuer's certificates name.
    # revocd serves the issuer's certificate (DER) at aia_url's path, and a degenerate
    # PKCS#7 of it and aia_extra_certificates at aia_p7c_url's path ("": not served).
    aia_url: str = setting("")
    aia_p7c_url: str = setting("")
    aia_extra_certificates: tuple[Path, ...] = ()


@dataclass(frozen=True)
class LimitsConfig:
    """[server.limits]: what one data plane worker allows (docs/dataplane.md, "Limits")."""

    # The HTTP limits' defaults, and why each is what it is, are in http/protocol.py.
    max_header_bytes: int = setting(_HTTP.max_header_bytes, 1024, 1 << 20)
    max_body_bytes: int = setting(_HTTP.max_body_bytes, 512, 1 << 20)
    header_timeout: float = setting(_HTTP.header_timeout, 1, 300, key="header_timeout_seconds")
    body_timeout: float = setting(_HTTP.body_timeout, 1, 300, key="body_timeout_seconds")
    send_timeout: float = setting(_HTTP.send_timeout, 1, 300, key="send_timeout_seconds")
    idle_timeout: float = setting(_HTTP.idle_timeout, 1, 3600, key="idle_timeout_seconds")
    max_connections: int = setting(_HTTP.max_connections, 1, 1_000_000)
    max_pipelined: int = setting(_HTTP.max_pipelined, 1, 1024)
    # Live signing admission: answers being signed now, and how long one may take
    # before the client gets tryLater instead (under the second a client waits, with
    # room for a store fetch during a mass revocation's re-signing).
    live_sign_max_pending: int = setting(256, 1, 1_000_000)
    live_sign_deadline_ms: int = setting(800, 10, 60_000)
    # While the event loop runs this late, live signatures are shed: keeps cached GETs
    # (and everything else) within tens of milliseconds under a flood of nonce POSTs.
    live_sign_loop_lag_ms: int = setting(5, 1, 60_000)
    # A connection answered tryLater is not read again for this long (at most the
    # Retry-After it was given), so a client that retries at once cannot keep a core
    # busy with refusals.
    shed_pause_ms: int = setting(500, 0, 1000)


@dataclass(frozen=True)
class ServerConfig:
    host: str = setting("127.0.0.1")  # loopback until an operator chooses otherwise
    port: int = setting(8080, 0, 65535)  # 0: any free port
    workers: int = setting(1, 1, 256)
    ocsp_path: str = setting("/")
    crl_dir: Path | None = None  # None: <state_dir>/crl
    # Answers and records in each worker's memory: about 2 KB each.
    cache_entries: int = setting(1_000_000, 0, 100_000_000)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    log_summary_seconds: int = setting(60, 0, 86400)  # 0: no periodic summary line
    # Upper bound on max-age (0: to the next re-sign or planned publication); a CDN
    # serves an answer that changed for at most this long.
    cache_max_age_seconds: int = setting(0, 0, 7 * 86400)
    crl_generator: bool = setting(True)  # false: a separate `revocd crl run` publishes
    # Idle connections and cached GETs in the compiled epoll reactor
    # (responder/http/reactor.py); false: every connection has its own trio task.
    # It serves from the shared answer cache, so it needs shared_cache_mb > 0.
    reactor: bool = setting(True)
    # The host's shared answer cache of GET answers (responder/answers/arena.py), in
    # MiB, allocated at start; 0: each worker keeps GET answers in its own cache.
    shared_cache_mb: int = setting(256, 0, 1 << 20)
    # Its file (on tmpfs); None: /dev/shm/revocd-<hash of state_dir>.arena
    shared_cache_path: Path | None = None


@dataclass(frozen=True)
class ControlConfig:
    host: str = setting("127.0.0.1")
    port: int = setting(8081, 0, 65535)
    # A batch of 10,000 events is about 1.5 MB of JSON.
    max_body_bytes: int = setting(8 * 1024 * 1024, 1024, 256 * 1024 * 1024)


@dataclass(frozen=True)
class PresignConfig:
    enabled: bool = setting(True)
    # How often the due index is read; with nothing due a sweep is cheap.
    sweep_interval_seconds: int = setting(300, 1, 86400)
    batch: int = setting(256, 1, 10_000)  # answers per signing batch and store write
    concurrency: int = setting(4, 1, 256)  # batches in flight


@dataclass(frozen=True)
class AuditConfig:
    """The security/audit log (see responder/audit/log.py)."""

    enabled: bool = setting(True)
    file: Path | None = None  # None: state_dir/audit.log
    max_bytes: int = setting(256 * 1024 * 1024, 64 * 1024, 1 << 40)  # then rotated
    fsync: bool = setting(True)  # a record is on disk before the 200
    revocation_burst_per_minute: int = setting(1000, 1, 10_000_000)
    # OCSP questions about serials never issued, per minute over all workers, above
    # which an anomaly.never_issued_queries is recorded (0: never)
    never_issued_per_minute: int = setting(1000, 0, 100_000_000)
    answer_expiry_warning_hours: int = setting(4, 1, 24 * 30)


class TagHeader(StrEnum):
    """The response header a CDN reads cache tags from (each spells the list its way)."""

    NONE = "none"
    XKEY = "xkey"  # Varnish with vmod-xkey: space-separated
    SURROGATE_KEY = "Surrogate-Key"  # Fastly: space-separated
    CACHE_TAG = "Cache-Tag"  # Cloudflare: comma-separated
    EDGE_CACHE_TAG = "Edge-Cache-Tag"  # Akamai: comma-separated


class PurgeKind(StrEnum):
    HTTP = "http"  # PURGE/BAN with the tags in a header: Varnish (xkey), nginx, others
    FASTLY = "fastly"  # surrogate-key purge API
    CLOUDFLARE = "cloudflare"  # purge_cache by tag
    AKAMAI = "akamai"  # Fast Purge v3 by cache tag, EdgeGrid-signed


@dataclass(frozen=True)
class PurgeTargetConfig:
    """[[cdn.purge]]: one CDN (or edge tier) that is told what changed."""

    name: str
    kind: PurgeKind = setting(PurgeKind.HTTP)
    # http: the purge endpoint; the others: the API base ("" : the provider's public API,
    # or for akamai the host of the credentials file)
    url: str = setting("")
    method: str = setting("PURGE")  # http only: PURGE, BAN, or what the edge takes
    purge_header: str = setting("xkey-purge")  # http only: the header carrying the tags
    service_id: str = setting("")  # fastly
    zone_id: str = setting("")  # cloudflare
    network: str = setting("production")  # akamai: production or staging
    token_env: str = setting("")  # fastly API token / cloudflare API token
    credentials_file: Path | None = None  # akamai: an .edgerc with a [default] section
    soft: bool = setting(False)  # mark stale instead of removing (fastly, http BAN-less)
    # 0: the provider's documented limit (providers.py: LIMITS)
    max_tags_per_request: int = setting(0, 0, 10_000)
    requests_per_minute: int = setting(0, 0, 1_000_000)
    tags_per_minute: int = setting(0, 0, 10_000_000)
    timeout_seconds: float = setting(10.0, 1, 120)


@dataclass(frozen=True)
class CdnConfig:
    """[cdn]: cache tags on what the data plane serves, and purges when it changes."""

    tag_header: TagHeader = setting(TagHeader.NONE)
    # CDN-Cache-Control max-age (RFC 9213) for answers, CRLs and AIA: a CDN that purge
    # keeps right may hold them longer than clients (0: the header is not sent). Never
    # beyond an answer's nextUpdate.
    cdn_max_age_seconds: int = setting(0, 0, 30 * 86400)
    # A change is purged this long after it was acknowledged, so that the origin's own
    # caches (invalidated by the same change) are right before the CDN asks again.
    purge_delay_ms: int = setting(250, 0, 60_000)
    # More changed serials of one issuer than this in one pass: purge the issuer's tag
    # once instead (a mass revocation would otherwise exhaust providers' rate limits).
    issuer_purge_threshold: int = setting(1000, 1, 10_000_000)
    retry_max_seconds: int = setting(300, 1, 86400)
    targets: tuple[PurgeTargetConfig, ...] = ()


@dataclass(frozen=True)
class PropagationConfig:
    """[propagation]: the ledger of when each revocation became visible where."""

    enabled: bool = setting(True)
    retention_days: int = setting(400, 1, 36500)
    # Targets per step, from acknowledgement (alerts and the report compare with them);
    # the BR deadline for the OCSP answer and the CRL is 24 hours (BR 4.9.10, 4.9.7).
    signed_target_seconds: int = setting(60, 1, 86400)
    served_target_seconds: int = setting(120, 1, 86400)
    purged_target_seconds: int = setting(300, 1, 86400)
    crl_target_seconds: int = setting(3600, 1, 86400)
    probed_target_seconds: int = setting(900, 1, 86400)


@dataclass(frozen=True)
class ProbeConfig:
    """[probe]: `revocd probe`, checking what the public URLs serve."""

    # The public OCSP URL (through the CDN), as in the certificates' AIA; "": the data
    # plane's own address
    ocsp_url: str = setting("")
    # The public URL of each issuer's CCADB JSON list of CRL URLs, with {issuer}; "":
    # the CRL URL's directory + <issuer>.crls.json
    crl_list_url: str = setting("")
    interval_seconds: int = setting(60, 1, 86400)
    sample: int = setting(20, 0, 100_000)  # random serials per issuer per round
    # Revocations acknowledged within this long are probed until seen revoked.
    recent_seconds: int = setting(86400, 60, 30 * 86400)
    timeout_seconds: float = setting(10.0, 1, 120)
    # An answer or CRL is stale when its thisUpdate is older than this.
    max_age_hours: int = setting(96, 1, 240)


@dataclass(frozen=True)
class InventoryConfig:
    """[inventory]: the expiry figures of what each issuer has out (inventory/watch.py)."""

    enabled: bool = setting(True)
    scan_interval_seconds: int = setting(300, 10, 86400)
    # Thresholds of revocd_inventory_expiring, in days (a list in the file)
    expiry_days: tuple[int, ...] = (90, 60, 30, 7)
    # Mass expiry: more than this share of an issuer's valid certificates ending on one
    # UTC day, and at least mass_expiry_min of them
    mass_expiry_share: float = setting(0.2, 0.001, 1.0)
    mass_expiry_min: int = setting(100, 1, 1_000_000_000)
    # Owner labels on the expiry metric: the busiest N, the rest as "other"
    owner_labels: int = setting(50, 0, 10_000)


class SiemTransport(StrEnum):
    TCP = "tcp"  # RFC 5424 over TCP, octet-counted frames (RFC 6587 3.4.1)
    TLS = "tls"  # RFC 5425
    FILE = "file"  # one line per record, appended (for collectors that tail files)


class SiemFormat(StrEnum):
    JSON = "json"  # the audit record as JSON in the syslog MSG
    CEF = "cef"  # ArcSight Common Event Format
    OCSF = "ocsf"  # an OCSF-shaped JSON object


@dataclass(frozen=True)
class SiemConfig:
    """[[siem]]: one collector the audit log is exported to (siem/exporter.py)."""

    name: str
    transport: SiemTransport = setting(SiemTransport.TCP)
    format: SiemFormat = setting(SiemFormat.JSON)
    address: str = setting("")  # host:port for tcp and tls
    path: Path | None = None  # file
    ca_file: Path | None = None  # tls: the collector's CA ("": the system's)
    cert_file: Path | None = None  # tls: a client certificate, when the collector asks
    key_file: Path | None = None
    server_name: str = setting("")  # tls: the name to verify ("": the address's host)
    facility: int = setting(13, 0, 23)  # 13: log audit (RFC 5424 6.2.1)
    app_name: str = setting("revocd")
    batch: int = setting(500, 1, 100_000)  # records per send
    # How long a send may wait for the collector to have taken every byte
    timeout_seconds: float = setting(10.0, 1, 300)
    retry_max_seconds: float = setting(30.0, 1, 3600)


@dataclass(frozen=True)
class TokenConfig:
    name: str
    sha256: str
    issuers: frozenset[str]  # "*" for every issuer


@dataclass(frozen=True)
class Config:
    state_dir: Path
    store: StoreConfig
    issuers: dict[str, IssuerConfig]
    source: Path | None = None
    # How far in the future an event's times may be (clocks of CA and revocd differ).
    clock_skew_seconds: int = setting(300, 0, 3600)
    server: ServerConfig = field(default_factory=ServerConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    tokens: dict[str, TokenConfig] = field(default_factory=dict)
    presign: PresignConfig = field(default_factory=PresignConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    cdn: CdnConfig = field(default_factory=CdnConfig)
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    inventory: InventoryConfig = field(default_factory=InventoryConfig)
    siem: tuple[SiemConfig, ...] = ()
    # Issuer name -> its certificate: resolved data (resolve_config), not a setting;
    # empty until the configuration is resolved.
    certificates: Mapping[str, x509.Certificate] = field(default_factory=dict, repr=False)

    @property
    def audit_file(self) -> Path:
        return self.audit.file or self.state_dir / "audit.log"
