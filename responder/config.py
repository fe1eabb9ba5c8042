"""The one configuration model: a TOML file, validated into frozen dataclasses.

Every error names the key it is about (`issuers.demo.policy: ...`) and stops
start-up. docs/config.md documents every key.
"""

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509

from .http.protocol import Limits as HttpLimits
from .policy import Policy

_HTTP = HttpLimits()

ISSUER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ConfigError(ValueError):
    """A configuration problem; the message starts with the offending key."""


@dataclass(frozen=True)
class StoreConfig:
    url: str = ""  # empty: embedded valkey-server under state_dir
    replicas: int = 0
    durability_timeout_ms: int = 2000
    feed_maxlen: int = 100_000
    # Several revocd processes on one store split the pre-signing by partition leases;
    # a dead process's share is taken over within this many seconds.
    lease_seconds: int = 30


@dataclass(frozen=True)
class HsmConfig:
    """A signing key in a PKCS#11 module."""

    module: str
    token_label: str | None = None
    token_serial: str | None = None
    key_label: str | None = None
    key_id: bytes | None = None
    pin_file: Path | None = None
    pin_env: str | None = None
    timeout_ms: int = 2000
    queue_size: int = 10_000


@dataclass(frozen=True)
class CrlConfig:
    """How an issuer's CRLs are made and where they go."""

    key: Path | None = None  # the issuer's key, which signs its CRLs...
    hsm: HsmConfig | None = None  # ...or the same key in a PKCS#11 module
    key_passphrase_file: Path | None = None
    key_passphrase_env: str | None = None
    url: str = ""  # full CRL (one shard) or shard URL template with {shard}
    validity_hours: int = 168
    republish_hours: int = 72
    debounce_seconds: float = 2.0
    retention_days: int | None = None  # None: the policy's default
    s3_bucket: str | None = None  # also publish to S3-compatible storage
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None


@dataclass(frozen=True)
class IssuerConfig:
    name: str
    certificate: Path
    policy: Policy = Policy.TLS
    partitions: int = 64
    crl_shards: int = 1
    cert: x509.Certificate | None = field(default=None, compare=False, repr=False)
    key: Path | None = None  # the issuer signs its own answers
    responder_certificate: Path | None = None  # or a delegated responder does
    responder_key: Path | None = None
    key_passphrase_file: Path | None = None
    key_passphrase_env: str | None = None
    rsa_padding: str = "pkcs1v15"
    validity_hours: int = 96
    nonce: str = "echo"
    unknown: str = "unknown"
    hsm: HsmConfig | None = None
    crl: CrlConfig | None = None


@dataclass(frozen=True)
class LimitsConfig:
    """[server.limits]: what one data plane worker allows (docs/dataplane.md, "Limits")."""

    # The HTTP limits' defaults, and why each is what it is, are in http/protocol.py.
    max_header_bytes: int = _HTTP.max_header_bytes
    max_body_bytes: int = _HTTP.max_body_bytes
    header_timeout: float = _HTTP.header_timeout
    body_timeout: float = _HTTP.body_timeout
    send_timeout: float = _HTTP.send_timeout
    idle_timeout: float = _HTTP.idle_timeout
    max_connections: int = _HTTP.max_connections
    max_pipelined: int = _HTTP.max_pipelined
    # Live signing admission: answers being signed now, and how long one may take
    # before the client gets tryLater instead (under the second a client waits, with
    # room for a store fetch during a mass revocation's re-signing).
    live_sign_max_pending: int = 256
    live_sign_deadline_ms: int = 800
    # While the event loop runs this late, live signatures are shed: keeps cached GETs
    # (and everything else) within tens of milliseconds under a flood of nonce POSTs.
    live_sign_loop_lag_ms: int = 5
    # A connection answered tryLater is not read again for this long (at most the
    # Retry-After it was given), so a client that retries at once cannot keep a core
    # busy with refusals.
    shed_pause_ms: int = 500


_LIMITS = LimitsConfig()


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    ocsp_path: str = "/"
    crl_dir: Path | None = None
    cache_entries: int = 1_000_000
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    log_summary_seconds: int = 60  # 0: no periodic operational summary line
    cache_max_age_seconds: int = 0  # 0: max-age runs to the next re-sign / publication
    crl_generator: bool = True  # false: CRLs come from a separate `revocd crl run`


@dataclass(frozen=True)
class ControlConfig:
    host: str = "127.0.0.1"
    port: int = 8081
    max_body_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class PresignConfig:
    enabled: bool = True
    sweep_interval_seconds: int = 300
    batch: int = 256
    concurrency: int = 4


@dataclass(frozen=True)
class AuditConfig:
    """The security/audit log (see responder/audit/log.py)."""

    enabled: bool = True
    file: Path | None = None  # None: state_dir/audit.log
    max_bytes: int = 256 * 1024 * 1024
    fsync: bool = True
    revocation_burst_per_minute: int = 1000
    answer_expiry_warning_hours: int = 4


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
    clock_skew_seconds: int = 300
    server: ServerConfig = field(default_factory=ServerConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    tokens: dict[str, TokenConfig] = field(default_factory=dict)
    presign: PresignConfig = field(default_factory=PresignConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)

    @property
    def audit_file(self) -> Path:
        return self.audit.file or self.state_dir / "audit.log"


def _take(table: dict[str, Any], key: str, where: str, kind: type, default: Any) -> Any:
    if key not in table:
        return default
    value = table.pop(key)
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"{where}{key}: expected an integer, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _no_leftovers(table: dict[str, Any], where: str) -> None:
    if table:
        raise ConfigError(f"{where}{sorted(table)[0]}: unknown key")


def _positive(value: int, name: str, low: int = 1, high: int = 1 << 20) -> int:
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low} and {high}, got {value}")
    return value


def load_config(path: str | Path) -> Config:
    # Absolute from here on: every relative path in the file is relative to the file,
    # and the embedded store's server changes into its own directory before it opens
    # its log, so a relative path handed to it would name another file.
    path = Path(path).absolute()
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(raw, base=path.parent, source=path)


def parse_config(raw: dict[str, Any], base: Path, source: Path | None = None) -> Config:
    raw = dict(raw)
    state_dir = base / _take(raw, "state_dir", "", str, "state")
    skew = _positive(_take(raw, "clock_skew_seconds", "", int, 300), "clock_skew_seconds", 0, 3600)

    store_raw = dict(_take(raw, "store", "", dict, {}))
    store = StoreConfig(
        url=_take(store_raw, "url", "store.", str, ""),
        replicas=_positive(_take(store_raw, "replicas", "store.", int, 0), "store.replicas", 0, 16),
        durability_timeout_ms=_positive(
            _take(store_raw, "durability_timeout_ms", "store.", int, 2000),
            "store.durability_timeout_ms",
            10,
            60_000,
        ),
        feed_maxlen=_positive(
            _take(store_raw, "feed_maxlen", "store.", int, 100_000),
            "store.feed_maxlen",
            100,
            10_000_000,
        ),
        lease_seconds=_positive(
            _take(store_raw, "lease_seconds", "store.", int, StoreConfig.lease_seconds),
            "store.lease_seconds",
            2,
            3600,
        ),
    )
    _no_leftovers(store_raw, "store.")

    issuers: dict[str, IssuerConfig] = {}
    for name, table in _take(raw, "issuers", "", dict, {}).items():
        where = f"issuers.{name}."
        if not ISSUER_NAME.match(name):
            raise ConfigError(
                f"issuers.{name}: issuer names are 1-63 characters of a-z, 0-9, '-' and '_'"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"issuers.{name}: expected a table")
        table = dict(table)
        cert_path = _take(table, "certificate", where, str, None)
        if cert_path is None:
            raise ConfigError(f"{where}certificate: required")
        cert_file = base / cert_path
        try:
            cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        except OSError as exc:
            raise ConfigError(
                f"{where}certificate: cannot read {cert_file}: {exc.strerror}"
            ) from exc
        except ValueError as exc:
            raise ConfigError(f"{where}certificate: {cert_file} is not a PEM certificate") from exc
        policy_name = _take(table, "policy", where, str, "tls")
        try:
            policy = Policy(policy_name)
        except ValueError as exc:
            choices = ", ".join(p.value for p in Policy)
            raise ConfigError(
                f"{where}policy: must be one of {choices}, got {policy_name!r}"
            ) from exc
        partitions = _positive(
            _take(table, "partitions", where, int, 64), f"{where}partitions", 1, 16384
        )
        crl_shards = _positive(
            _take(table, "crl_shards", where, int, 1), f"{where}crl_shards", 1, 4096
        )
        issuers[name] = _signing_config(
            table, where, base, IssuerConfig(name, cert_file, policy, partitions, crl_shards, cert)
        )
        _no_leftovers(table, where)
    server = _server_config(dict(_take(raw, "server", "", dict, {})), base, state_dir)
    control_raw = dict(_take(raw, "control", "", dict, {}))
    control = ControlConfig(
        host=_take(control_raw, "host", "control.", str, "127.0.0.1"),
        port=_positive(_take(control_raw, "port", "control.", int, 8081), "control.port", 0, 65535),
        max_body_bytes=_positive(
            _take(control_raw, "max_body_bytes", "control.", int, 8 * 1024 * 1024),
            "control.max_body_bytes",
            1024,
            256 * 1024 * 1024,
        ),
    )
    _no_leftovers(control_raw, "control.")
    tokens = _tokens(dict(_take(raw, "tokens", "", dict, {})), issuers)
    presign_raw = dict(_take(raw, "presign", "", dict, {}))
    presign = PresignConfig(
        enabled=_take(presign_raw, "enabled", "presign.", bool, True),
        sweep_interval_seconds=_positive(
            _take(presign_raw, "sweep_interval_seconds", "presign.", int, 300),
            "presign.sweep_interval_seconds",
            1,
            86400,
        ),
        batch=_positive(
            _take(presign_raw, "batch", "presign.", int, 256), "presign.batch", 1, 10_000
        ),
        concurrency=_positive(
            _take(presign_raw, "concurrency", "presign.", int, 4), "presign.concurrency", 1, 256
        ),
    )
    _no_leftovers(presign_raw, "presign.")
    audit = _audit_config(dict(_take(raw, "audit", "", dict, {})), base)
    _no_leftovers(raw, "")
    if server.port != 0 and server.port == control.port and server.host == control.host:
        raise ConfigError("control.port: the control plane never shares the data plane's port")
    return Config(
        state_dir=state_dir,
        store=store,
        issuers=issuers,
        source=source,
        clock_skew_seconds=skew,
        server=server,
        control=control,
        tokens=tokens,
        presign=presign,
        audit=audit,
    )


def _audit_config(table: dict[str, Any], base: Path) -> AuditConfig:
    where = "audit."
    audit = AuditConfig(
        enabled=_take(table, "enabled", where, bool, True),
        file=_new_path(table, "file", where, base),
        max_bytes=_positive(
            _take(table, "max_bytes", where, int, 256 * 1024 * 1024),
            "audit.max_bytes",
            64 * 1024,
            1 << 40,
        ),
        fsync=_take(table, "fsync", where, bool, True),
        revocation_burst_per_minute=_positive(
            _take(table, "revocation_burst_per_minute", where, int, 1000),
            "audit.revocation_burst_per_minute",
            1,
            10_000_000,
        ),
        answer_expiry_warning_hours=_positive(
            _take(table, "answer_expiry_warning_hours", where, int, 4),
            "audit.answer_expiry_warning_hours",
            1,
            24 * 30,
        ),
    )
    _no_leftovers(table, where)
    return audit


def _new_path(table: dict[str, Any], key: str, where: str, base: Path) -> Path | None:
    """A path revocd creates (the audit log): only its directory has to be creatable."""
    value: str | None = _take(table, key, where, str, None)
    return None if value is None else base / value


def _path(table: dict[str, Any], key: str, where: str, base: Path) -> Path | None:
    value: str | None = _take(table, key, where, str, None)
    if value is None:
        return None
    path: Path = base / value
    if not path.exists():
        raise ConfigError(f"{where}{key}: {path} does not exist")
    return path


def _signing_config(
    table: dict[str, Any], where: str, base: Path, issuer: IssuerConfig
) -> IssuerConfig:
    key = _path(table, "key", where, base)
    responder_cert = _path(table, "responder_certificate", where, base)
    responder_key = _path(table, "responder_key", where, base)
    hsm = _hsm_config(table, where, base)
    if hsm is not None:
        if key is not None or responder_key is not None:
            which = "key" if key is not None else "responder_key"
            raise ConfigError(f"{where}{which}: the signing key is in the HSM ([hsm]); remove it")
    elif (responder_cert is None) != (responder_key is None):
        missing = "responder_key" if responder_key is None else "responder_certificate"
        raise ConfigError(f"{where}{missing}: required with the other responder_* key")
    if key is not None and responder_cert is not None:
        raise ConfigError(f"{where}key: give the issuer key or a delegated responder, not both")
    padding = _take(table, "rsa_padding", where, str, "pkcs1v15")
    if padding not in ("pkcs1v15", "pss"):
        raise ConfigError(f"{where}rsa_padding: must be pkcs1v15 or pss")
    validity = _positive(
        _take(table, "validity_hours", where, int, 96), f"{where}validity_hours", 8, 240
    )
    nonce = _take(table, "nonce", where, str, "echo")
    if nonce not in ("echo", "ignore"):
        raise ConfigError(f"{where}nonce: must be echo or ignore")
    unknown = _take(table, "unknown", where, str, "unknown")
    if unknown not in ("unknown", "unauthorized"):
        raise ConfigError(f"{where}unknown: must be unknown or unauthorized")
    return replace(
        issuer,
        key=key,
        responder_certificate=responder_cert,
        responder_key=responder_key,
        key_passphrase_file=_path(table, "key_passphrase_file", where, base),
        key_passphrase_env=_take(table, "key_passphrase_env", where, str, None),
        rsa_padding=padding,
        validity_hours=validity,
        nonce=nonce,
        unknown=unknown,
        hsm=hsm,
        crl=_crl_config(table, where, base, issuer.crl_shards),
    )


def _crl_config(table: dict[str, Any], where: str, base: Path, shards: int) -> CrlConfig | None:
    found = _take(table, "crl", where, dict, None)
    if found is None:
        return None
    raw = dict(found)
    w = f"{where}crl."
    key = _path(raw, "key", w, base)
    hsm = _hsm_config(raw, w, base)
    if (key is None) == (hsm is None):
        raise ConfigError(f"{w}key: give the issuer's key file or an [hsm] table (one of them)")
    url = _take(raw, "url", w, str, None)
    if url is None:
        raise ConfigError(f"{w}url: required (the CRL URL in the certificates' CRL DP)")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{w}url: must be an http(s) URL")
    if shards > 1 and "{shard}" not in url:
        raise ConfigError(f"{w}url: needs {{shard}} with crl_shards = {shards}")
    try:
        url.format(shard=0)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"{w}url: only {{shard}} may be substituted ({exc})") from None
    validity = _positive(_take(raw, "validity_hours", w, int, 168), f"{w}validity_hours", 1, 239)
    republish = _positive(
        _take(raw, "republish_hours", w, int, min(72, validity // 2 or 1)),
        f"{w}republish_hours",
        1,
        168,
    )
    if republish >= validity:
        raise ConfigError(f"{w}republish_hours: must be less than validity_hours")
    debounce = raw.pop("debounce_seconds", 2.0)
    if (
        isinstance(debounce, bool)
        or not isinstance(debounce, int | float)
        or not (0 <= debounce <= 3600)
    ):
        raise ConfigError(f"{w}debounce_seconds: must be between 0 and 3600")
    retention = _take(raw, "retention_days", w, int, None)
    if retention is not None and not 0 <= retention <= 36500:
        raise ConfigError(f"{w}retention_days: must be between 0 and 36500")
    config = CrlConfig(
        key=key,
        hsm=hsm,
        key_passphrase_file=_path(raw, "key_passphrase_file", w, base),
        key_passphrase_env=_take(raw, "key_passphrase_env", w, str, None),
        url=url,
        validity_hours=validity,
        republish_hours=republish,
        debounce_seconds=float(debounce),
        retention_days=retention,
        s3_bucket=_take(raw, "s3_bucket", w, str, None),
        s3_prefix=_take(raw, "s3_prefix", w, str, ""),
        s3_endpoint_url=_take(raw, "s3_endpoint_url", w, str, None),
        s3_region=_take(raw, "s3_region", w, str, None),
    )
    _no_leftovers(raw, w)
    return config


def _hsm_config(table: dict[str, Any], where: str, base: Path) -> HsmConfig | None:
    found = _take(table, "hsm", where, dict, None)
    if found is None:
        return None
    raw = dict(found)
    w = f"{where}hsm."
    module = _take(raw, "module", w, str, None)
    if module is None:
        raise ConfigError(f"{w}module: required (path of the PKCS#11 library)")
    if not Path(module).exists():
        raise ConfigError(f"{w}module: {module} does not exist")
    key_id_hex = _take(raw, "key_id", w, str, None)
    try:
        key_id = bytes.fromhex(key_id_hex) if key_id_hex is not None else None
    except ValueError:
        raise ConfigError(f"{w}key_id: not hex") from None
    config = HsmConfig(
        module=module,
        token_label=_take(raw, "token_label", w, str, None),
        token_serial=_take(raw, "token_serial", w, str, None),
        key_label=_take(raw, "key_label", w, str, None),
        key_id=key_id,
        pin_file=_path(raw, "pin_file", w, base),
        pin_env=_take(raw, "pin_env", w, str, None),
        timeout_ms=_positive(_take(raw, "timeout_ms", w, int, 2000), f"{w}timeout_ms", 10, 60_000),
        queue_size=_positive(
            _take(raw, "queue_size", w, int, 10_000), f"{w}queue_size", 1, 1_000_000
        ),
    )
    if config.token_label is None and config.token_serial is None:
        raise ConfigError(f"{w}token_label: give token_label or token_serial")
    if config.key_label is None and config.key_id is None:
        raise ConfigError(f"{w}key_label: give key_label or key_id")
    if (config.pin_file is None) == (config.pin_env is None):
        raise ConfigError(f"{w}pin_file: give pin_file or pin_env (one of them)")
    _no_leftovers(raw, w)
    return config


def _limit(table: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    where = "server.limits."
    return _positive(_take(table, key, where, int, default), f"{where}{key}", low, high)


def _seconds(table: dict[str, Any], key: str, default: float, high: int = 300) -> float:
    return float(_limit(table, key, int(default), 1, high))


def _server_config(table: dict[str, Any], base: Path, state_dir: Path) -> ServerConfig:
    w = "server."
    limits_raw = dict(_take(table, "limits", w, dict, {}))
    limits = LimitsConfig(
        max_header_bytes=_limit(
            limits_raw, "max_header_bytes", _LIMITS.max_header_bytes, 1024, 1 << 20
        ),
        max_body_bytes=_limit(limits_raw, "max_body_bytes", _LIMITS.max_body_bytes, 512, 1 << 20),
        header_timeout=_seconds(limits_raw, "header_timeout_seconds", _LIMITS.header_timeout),
        body_timeout=_seconds(limits_raw, "body_timeout_seconds", _LIMITS.body_timeout),
        send_timeout=_seconds(limits_raw, "send_timeout_seconds", _LIMITS.send_timeout),
        idle_timeout=_seconds(limits_raw, "idle_timeout_seconds", _LIMITS.idle_timeout, 3600),
        max_connections=_limit(
            limits_raw, "max_connections", _LIMITS.max_connections, 1, 1_000_000
        ),
        max_pipelined=_limit(limits_raw, "max_pipelined", _LIMITS.max_pipelined, 1, 1024),
        live_sign_max_pending=_limit(
            limits_raw, "live_sign_max_pending", _LIMITS.live_sign_max_pending, 1, 1_000_000
        ),
        live_sign_deadline_ms=_limit(
            limits_raw, "live_sign_deadline_ms", _LIMITS.live_sign_deadline_ms, 10, 60_000
        ),
        live_sign_loop_lag_ms=_limit(
            limits_raw, "live_sign_loop_lag_ms", _LIMITS.live_sign_loop_lag_ms, 1, 60_000
        ),
        shed_pause_ms=_limit(limits_raw, "shed_pause_ms", _LIMITS.shed_pause_ms, 0, 1000),
    )
    _no_leftovers(limits_raw, "server.limits.")
    ocsp_path = _take(table, "ocsp_path", w, str, "/")
    if not ocsp_path.startswith("/"):
        raise ConfigError("server.ocsp_path: must start with /")
    crl_dir = _take(table, "crl_dir", w, str, None)
    server = ServerConfig(
        host=_take(table, "host", w, str, "127.0.0.1"),
        port=_positive(_take(table, "port", w, int, 8080), "server.port", 0, 65535),
        workers=_positive(_take(table, "workers", w, int, 1), "server.workers", 1, 256),
        ocsp_path=ocsp_path,
        crl_dir=(base / crl_dir) if crl_dir else state_dir / "crl",
        cache_entries=_positive(
            _take(table, "cache_entries", w, int, 1_000_000),
            "server.cache_entries",
            0,
            100_000_000,
        ),
        limits=limits,
        crl_generator=_take(table, "crl_generator", w, bool, True),
        cache_max_age_seconds=_positive(
            _take(table, "cache_max_age_seconds", w, int, 0),
            "server.cache_max_age_seconds",
            0,
            7 * 86400,
        ),
        log_summary_seconds=_positive(
            _take(table, "log_summary_seconds", w, int, 60), "server.log_summary_seconds", 0, 86400
        ),
    )
    _no_leftovers(table, w)
    return server


_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def _tokens(table: dict[str, Any], issuers: dict[str, IssuerConfig]) -> dict[str, TokenConfig]:
    tokens: dict[str, TokenConfig] = {}
    for name, raw_entry in table.items():
        where = f"tokens.{name}."
        if not isinstance(raw_entry, dict):
            raise ConfigError(f"tokens.{name}: expected a table")
        entry = dict(raw_entry)
        digest = _take(entry, "sha256", where, str, None)
        if digest is None or not _SHA256_HEX.match(digest.lower()):
            raise ConfigError(f"{where}sha256: the lowercase hex SHA-256 of the token is required")
        scope = _take(entry, "issuers", where, list, None)
        if not scope:
            raise ConfigError(f'{where}issuers: list the issuers this token may push for, or ["*"]')
        for issuer in scope:
            if issuer != "*" and issuer not in issuers:
                raise ConfigError(f"{where}issuers: unknown issuer {issuer!r}")
        _no_leftovers(entry, where)
        tokens[name] = TokenConfig(name, digest.lower(), frozenset(scope))
    return tokens
