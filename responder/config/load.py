"""TOML into the configuration model (model.py). Every key's default and range come
from the model, so they are written once; every error names the key it is about
(`issuers.demo.policy: ...`) and stops start-up.

`parse_config` reads no files: it turns the TOML table into the model, with paths
made absolute. `resolve_config` then checks that every file the model names exists
and loads the issuer certificates. `load_config` does all three for a file.
"""

import dataclasses
import hashlib
import re
import tomllib
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cryptography import x509

from ..policy import Policy
from . import model

ISSUER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem; the message starts with the offending key."""


def _take(table: dict[str, Any], key: str, where: str, kind: type, default: Any) -> Any:
    if key not in table:
        return default
    value = table.pop(key)
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"{where}{key}: expected an integer, got {value!r}")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}{key}: expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, kind):
        raise ConfigError(f"{where}{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _no_leftovers(table: dict[str, Any], where: str) -> None:
    if table:
        raise ConfigError(f"{where}{sorted(table)[0]}: unknown key")


def toml_key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key") or f.name)


def settings_of(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """TOML key -> field, for the fields of `cls` made with model.setting()."""
    return {toml_key(f): f for f in dataclasses.fields(cls) if "low" in f.metadata}


def _one(table: dict[str, Any], cls: type, name: str, where: str, default: Any = None) -> Any:
    """One setting of `cls` from `table`: the model's default when absent (or
    `default`, when the default depends on another key), its range checked."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    key, meta = toml_key(f), f.metadata
    fallback = f.default if default is None else default
    if isinstance(f.default, Enum):
        enum = type(f.default)
        raw = _take(table, key, where, str, None)
        if raw is None:
            return fallback
        try:
            return enum(raw)
        except ValueError:
            choices = ", ".join(str(e.value) for e in enum)
            raise ConfigError(f"{where}{key}: must be one of {choices}, got {raw!r}") from None
    kind: type = str
    if isinstance(f.default, bool):
        kind = bool
    elif isinstance(f.default, int) or (f.default is None and meta.get("low") is not None):
        kind = int
    elif isinstance(f.default, float):
        kind = float
    value = _take(table, key, where, kind, fallback)
    if value is not None and meta.get("low") is not None and kind in (int, float):
        low, high = meta["low"], meta["high"]
        if not low <= value <= high:
            shown = value if kind is float else int(value)
            raise ConfigError(f"{where}{key}: must be between {low} and {high}, got {shown}")
    return value


def _section(table: dict[str, Any], cls: type[T], where: str, **given: Any) -> T:
    """Every setting of `cls` from `table`, with `given` for the rest; no key left over."""
    values = {
        f.name: _one(table, cls, f.name, where)
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if "low" in f.metadata and f.name not in given
    }
    _no_leftovers(table, where)
    return cls(**values, **given)


def load_config(path: str | Path) -> model.Config:
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
    return resolve_config(parse_config(raw, base=path.parent, source=path))


def parse_config(raw: dict[str, Any], base: Path, source: Path | None = None) -> model.Config:
    raw = dict(raw)
    state_dir = base / _take(raw, "state_dir", "", str, "state")
    skew = _one(raw, model.Config, "clock_skew_seconds", "")
    store = _section(dict(_take(raw, "store", "", dict, {})), model.StoreConfig, "store.")
    issuers: dict[str, model.IssuerConfig] = {}
    for name, table in _take(raw, "issuers", "", dict, {}).items():
        issuers[name] = _issuer(name, table, base)
    server = _server_config(dict(_take(raw, "server", "", dict, {})), base, state_dir)
    control = _section(dict(_take(raw, "control", "", dict, {})), model.ControlConfig, "control.")
    tokens = _tokens(dict(_take(raw, "tokens", "", dict, {})), issuers)
    presign = _section(dict(_take(raw, "presign", "", dict, {})), model.PresignConfig, "presign.")
    audit_raw = dict(_take(raw, "audit", "", dict, {}))
    audit_file = _new_path(audit_raw, "file", "audit.", base)
    audit = _section(audit_raw, model.AuditConfig, "audit.", file=audit_file)
    cdn = _cdn_config(dict(_take(raw, "cdn", "", dict, {})), base)
    propagation = _section(
        dict(_take(raw, "propagation", "", dict, {})), model.PropagationConfig, "propagation."
    )
    probe = _section(dict(_take(raw, "probe", "", dict, {})), model.ProbeConfig, "probe.")
    inventory = _inventory_config(dict(_take(raw, "inventory", "", dict, {})))
    siem = _siem_config(_take(raw, "siem", "", list, []), base)
    for key, url in (("ocsp_url", probe.ocsp_url), ("crl_list_url", probe.crl_list_url)):
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"probe.{key}: must be an http(s) URL")
    _no_leftovers(raw, "")
    for name, issuer in issuers.items():
        for key in ("aia_url", "aia_p7c_url"):
            url = getattr(issuer, key)
            path = urlsplit(url).path if url else ""
            if path and (path == "/healthz" or path.startswith("/crl/")):
                raise ConfigError(
                    f"issuers.{name}.{key}: {path} is the data plane's own (/healthz, /crl/)"
                )
    if server.port != 0 and server.port == control.port and server.host == control.host:
        raise ConfigError("control.port: the control plane never shares the data plane's port")
    return model.Config(
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
        cdn=cdn,
        propagation=propagation,
        probe=probe,
        inventory=inventory,
        siem=siem,
    )


def _inventory_config(table: dict[str, Any]) -> model.InventoryConfig:
    w = "inventory."
    days = _take(table, "expiry_days", w, list, list(model.InventoryConfig.expiry_days))
    if (
        not days
        or len(days) > 10
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 3650 for d in days)
    ):
        raise ConfigError(f"{w}expiry_days: a list of 1 to 10 whole numbers of days, 1 to 3650")
    return _section(
        table, model.InventoryConfig, w, expiry_days=tuple(sorted(set(days), reverse=True))
    )


def _named_tables(found: list[Any], array: str) -> list[tuple[str, str, dict[str, Any]]]:
    """An array of tables ([[cdn.purge]], [[siem]]) whose entries each have a unique
    `name`: (where, name, the rest of the table) for each, names checked."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for i, item in enumerate(found):
        where = f"{array}[{i}]."
        if not isinstance(item, dict):
            raise ConfigError(f"{array}[{i}]: expected a table ([[{array}]])")
        raw = dict(item)
        name = _take(raw, "name", where, str, None)
        if name is None or not ISSUER_NAME.match(name):
            raise ConfigError(f"{where}name: required, 1-63 characters of a-z, 0-9, '-' and '_'")
        if any(n == name for _, n, _ in out):
            raise ConfigError(f"{where}name: {name!r} is used twice")
        out.append((where, name, raw))
    return out


def _siem_config(found: list[Any], base: Path) -> tuple[model.SiemConfig, ...]:
    sinks: list[model.SiemConfig] = []
    for where, name, raw in _named_tables(found, "siem"):
        paths = {
            "path": _new_path(raw, "path", where, base),
            "ca_file": _path(raw, "ca_file", where, base),
            "cert_file": _path(raw, "cert_file", where, base),
            "key_file": _path(raw, "key_file", where, base),
        }
        sink = _section(raw, model.SiemConfig, where, name=name, **paths)
        transport = model.SiemTransport
        if sink.transport is transport.FILE:
            if sink.path is None:
                raise ConfigError(f"{where}path: required for transport = file")
        else:
            host, _, port = sink.address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(
                    f"{where}address: host:port of the collector, got {sink.address!r}"
                )
        if (sink.cert_file is None) != (sink.key_file is None):
            raise ConfigError(f"{where}key_file: cert_file and key_file go together")
        if sink.transport is not transport.TLS and (sink.ca_file or sink.cert_file):
            raise ConfigError(f"{where}ca_file: only for transport = tls")
        if not re.match(r"^[!-~]{1,48}$", sink.app_name):
            raise ConfigError(f"{where}app_name: 1-48 printable ASCII characters (RFC 5424)")
        sinks.append(sink)
    return tuple(sinks)


_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_METHOD = re.compile(r"^[A-Z]{1,32}$")


def _cdn_config(table: dict[str, Any], base: Path) -> model.CdnConfig:
    w = "cdn."
    found = _take(table, "purge", w, list, [])
    targets: list[model.PurgeTargetConfig] = []
    for where, name, raw in _named_tables(found, "cdn.purge"):
        credentials = _path(raw, "credentials_file", where, base)
        target = _section(
            raw, model.PurgeTargetConfig, where, name=name, credentials_file=credentials
        )
        _check_target(target, where)
        targets.append(target)
    return _section(table, model.CdnConfig, w, targets=tuple(targets))


def _check_target(t: model.PurgeTargetConfig, where: str) -> None:
    """What each kind needs, named by key, so a purge never fails for want of it later."""
    kind = model.PurgeKind
    if t.url and not t.url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}url: must be an http(s) URL")
    if t.kind is kind.HTTP:
        if not t.url:
            raise ConfigError(f"{where}url: required for kind = http (the purge endpoint)")
        if not _METHOD.match(t.method):
            raise ConfigError(f"{where}method: an HTTP method in capitals, got {t.method!r}")
        if t.purge_header and not _HEADER_NAME.match(t.purge_header):
            raise ConfigError(f"{where}purge_header: not an HTTP header name")
    elif t.kind is kind.FASTLY:
        if not t.service_id:
            raise ConfigError(f"{where}service_id: required for kind = fastly")
        if not t.token_env:
            raise ConfigError(f"{where}token_env: required for kind = fastly (its API token)")
    elif t.kind is kind.CLOUDFLARE:
        if not t.zone_id:
            raise ConfigError(f"{where}zone_id: required for kind = cloudflare")
        if not t.token_env:
            raise ConfigError(f"{where}token_env: required for kind = cloudflare (its API token)")
    elif t.kind is kind.AKAMAI:
        if t.credentials_file is None:
            raise ConfigError(f"{where}credentials_file: required for kind = akamai (.edgerc)")
        if t.network not in ("production", "staging"):
            raise ConfigError(f"{where}network: production or staging, got {t.network!r}")


def _issuer(name: str, table: Any, base: Path) -> model.IssuerConfig:
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
    policy: Policy = _one(table, model.IssuerConfig, "policy", where)
    partitions = _one(table, model.IssuerConfig, "partitions", where)
    crl_shards = _one(table, model.IssuerConfig, "crl_shards", where)
    issuer = _signing_config(
        table,
        where,
        base,
        model.IssuerConfig(name, cert_file, policy, partitions, crl_shards),
    )
    _no_leftovers(table, where)
    return issuer


def _new_path(table: dict[str, Any], key: str, where: str, base: Path) -> Path | None:
    """A path revocd creates (the audit log): only its directory has to be creatable."""
    value: str | None = _take(table, key, where, str, None)
    return None if value is None else base / value


def _path(table: dict[str, Any], key: str, where: str, base: Path) -> Path | None:
    """A file revocd reads; resolve_config checks that it exists."""
    value: str | None = _take(table, key, where, str, None)
    return None if value is None else base / value


def _signing_config(
    table: dict[str, Any], where: str, base: Path, issuer: model.IssuerConfig
) -> model.IssuerConfig:
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
    return replace(
        issuer,
        key=key,
        responder_certificate=responder_cert,
        responder_key=responder_key,
        key_passphrase_file=_path(table, "key_passphrase_file", where, base),
        key_passphrase_env=_one(table, model.IssuerConfig, "key_passphrase_env", where),
        rsa_padding=_one(table, model.IssuerConfig, "rsa_padding", where),
        validity_hours=_one(table, model.IssuerConfig, "validity_hours", where),
        nonce=_one(table, model.IssuerConfig, "nonce", where),
        unknown=_one(table, model.IssuerConfig, "unknown", where),
        expired=_one(table, model.IssuerConfig, "expired", where),
        hsm=hsm,
        crl=_crl_config(table, where, base, issuer.crl_shards),
        **_aia_config(table, where, base),
    )


def _aia_config(table: dict[str, Any], where: str, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("aia_url", "aia_p7c_url"):
        url = _one(table, model.IssuerConfig, key, where)
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}{key}: must be an http(s) URL")
        if url and not urlsplit(url).path.strip("/"):
            raise ConfigError(f"{where}{key}: needs a path (the file revocd serves)")
        out[key] = url
    extra = _take(table, "aia_extra_certificates", where, list, [])
    if extra and not out["aia_p7c_url"]:
        raise ConfigError(f"{where}aia_extra_certificates: only go into aia_p7c_url's bundle")
    paths = []
    for item in extra:
        if not isinstance(item, str):
            raise ConfigError(f"{where}aia_extra_certificates: expected file names")
        paths.append(base / item)
    out["aia_extra_certificates"] = tuple(paths)
    return out


def _crl_config(
    table: dict[str, Any], where: str, base: Path, shards: int
) -> model.CrlConfig | None:
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
    validity = _one(raw, model.CrlConfig, "validity_hours", w)
    # A short validity lowers the default interval, so that a CRL is republished well
    # before its nextUpdate (half-way).
    default_republish = min(model.CrlConfig.republish_hours, validity // 2 or 1)
    republish = _one(raw, model.CrlConfig, "republish_hours", w, default_republish)
    if republish >= validity:
        raise ConfigError(f"{w}republish_hours: must be less than validity_hours")
    passphrase_file = _path(raw, "key_passphrase_file", w, base)
    return _section(
        raw,
        model.CrlConfig,
        w,
        key=key,
        hsm=hsm,
        key_passphrase_file=passphrase_file,
        url=url,
        validity_hours=validity,
        republish_hours=republish,
    )


def _hsm_config(table: dict[str, Any], where: str, base: Path) -> model.HsmConfig | None:
    found = _take(table, "hsm", where, dict, None)
    if found is None:
        return None
    raw = dict(found)
    w = f"{where}hsm."
    module = _take(raw, "module", w, str, None)
    if module is None:
        raise ConfigError(f"{w}module: required (path of the PKCS#11 library)")
    key_id_hex = _take(raw, "key_id", w, str, None)
    try:
        key_id = bytes.fromhex(key_id_hex) if key_id_hex is not None else None
    except ValueError:
        raise ConfigError(f"{w}key_id: not hex") from None
    pin_file = _path(raw, "pin_file", w, base)
    config = _section(raw, model.HsmConfig, w, module=module, key_id=key_id, pin_file=pin_file)
    if config.token_label is None and config.token_serial is None:
        raise ConfigError(f"{w}token_label: give token_label or token_serial")
    if config.key_label is None and config.key_id is None:
        raise ConfigError(f"{w}key_label: give key_label or key_id")
    if (config.pin_file is None) == (config.pin_env is None):
        raise ConfigError(f"{w}pin_file: give pin_file or pin_env (one of them)")
    return config


def _server_config(table: dict[str, Any], base: Path, state_dir: Path) -> model.ServerConfig:
    w = "server."
    limits = _section(
        dict(_take(table, "limits", w, dict, {})), model.LimitsConfig, "server.limits."
    )
    ocsp_path = _one(table, model.ServerConfig, "ocsp_path", w)
    if not ocsp_path.startswith("/"):
        raise ConfigError("server.ocsp_path: must start with /")
    crl_dir = _take(table, "crl_dir", w, str, None)
    arena = _take(table, "shared_cache_path", w, str, None)
    return _section(
        table,
        model.ServerConfig,
        w,
        ocsp_path=ocsp_path,
        crl_dir=(base / crl_dir) if crl_dir else state_dir / "crl",
        shared_cache_path=(base / arena) if arena else _arena_path(state_dir),
        limits=limits,
    )


def _arena_path(state_dir: Path) -> Path:
    """Where the shared answer cache lives by default: tmpfs (it is memory, not data),
    one file per state directory so two revocd on one host never share one."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    shm = Path("/dev/shm")
    return shm / f"revocd-{digest}.arena" if shm.is_dir() else state_dir / "answers.arena"


def _tokens(
    table: dict[str, Any], issuers: dict[str, model.IssuerConfig]
) -> dict[str, model.TokenConfig]:
    tokens: dict[str, model.TokenConfig] = {}
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
        tokens[name] = model.TokenConfig(name, digest.lower(), frozenset(scope))
    return tokens


def resolve_config(config: model.Config) -> model.Config:
    """Check that every file the configuration names exists (naming its key) and load the
    issuer certificates: what start-up needs before anything runs."""
    certificates = {}
    for name, issuer in config.issuers.items():
        where = f"issuers.{name}."
        try:
            cert = x509.load_pem_x509_certificate(issuer.certificate.read_bytes())
        except OSError as exc:
            raise ConfigError(
                f"{where}certificate: cannot read {issuer.certificate}: {exc.strerror}"
            ) from exc
        except ValueError as exc:
            raise ConfigError(
                f"{where}certificate: {issuer.certificate} is not a PEM certificate"
            ) from exc
        files = {
            "key": issuer.key,
            "responder_certificate": issuer.responder_certificate,
            "responder_key": issuer.responder_key,
            "key_passphrase_file": issuer.key_passphrase_file,
        }
        _exist(files, where)
        for extra in issuer.aia_extra_certificates:
            _exist({"aia_extra_certificates": extra}, where)
        _hsm_exists(issuer.hsm, f"{where}hsm.")
        if issuer.crl is not None:
            crl_files = {
                "key": issuer.crl.key,
                "key_passphrase_file": issuer.crl.key_passphrase_file,
            }
            _exist(crl_files, f"{where}crl.")
            _hsm_exists(issuer.crl.hsm, f"{where}crl.hsm.")
        certificates[name] = cert
    return replace(config, certificates=certificates)


def _exist(files: dict[str, Path | None], where: str) -> None:
    for key, path in files.items():
        if path is not None and not path.exists():
            raise ConfigError(f"{where}{key}: {path} does not exist")


def _hsm_exists(hsm: model.HsmConfig | None, where: str) -> None:
    if hsm is not None:
        if not Path(hsm.module).exists():
            raise ConfigError(f"{where}module: {hsm.module} does not exist")
        _exist({"pin_file": hsm.pin_file}, where)
