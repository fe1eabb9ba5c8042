"""The one configuration model: a TOML file, validated into frozen dataclasses.

Every error names the key it is about (`issuers.demo.policy: ...`) and stops
start-up. docs/config.md documents every key.
"""

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from .policy import Policy

ISSUER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ConfigError(ValueError):
    """A configuration problem; the message starts with the offending key."""


@dataclass(frozen=True)
class StoreConfig:
    url: str = ""  # empty: embedded valkey-server under state_dir
    replicas: int = 0
    durability_timeout_ms: int = 2000
    feed_maxlen: int = 100_000


@dataclass(frozen=True)
class IssuerConfig:
    name: str
    certificate: Path
    policy: Policy = Policy.TLS
    partitions: int = 64
    crl_shards: int = 1
    cert: x509.Certificate | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Config:
    state_dir: Path
    store: StoreConfig
    issuers: dict[str, IssuerConfig]
    source: Path | None = None
    clock_skew_seconds: int = 300


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
    path = Path(path)
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
            _take(table, "partitions", where, int, 64), f"{where}partitions", 1, 4096
        )
        crl_shards = _positive(
            _take(table, "crl_shards", where, int, 1), f"{where}crl_shards", 1, 4096
        )
        _no_leftovers(table, where)
        issuers[name] = IssuerConfig(name, cert_file, policy, partitions, crl_shards, cert)
    _no_leftovers(raw, "")
    return Config(
        state_dir=state_dir, store=store, issuers=issuers, source=source, clock_skew_seconds=skew
    )
