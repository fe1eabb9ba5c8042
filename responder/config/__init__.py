"""revocd's configuration: the model (model.py: frozen dataclasses, Enums for every
choice, each default once with its range and reason) and the loader (load.py: TOML
into the model, every error naming its key). docs/config.md documents every key."""

from ..domain.answering import NoncePolicy, UnknownAnswer
from .load import ConfigError, load_config, parse_config, resolve_config
from .model import (
    AuditConfig,
    CdnConfig,
    Config,
    ControlConfig,
    CrlConfig,
    HsmConfig,
    IssuerConfig,
    LimitsConfig,
    PresignConfig,
    RsaPadding,
    ServerConfig,
    StoreConfig,
    TokenConfig,
)

__all__ = [
    "AuditConfig",
    "CdnConfig",
    "Config",
    "ConfigError",
    "ControlConfig",
    "CrlConfig",
    "HsmConfig",
    "IssuerConfig",
    "LimitsConfig",
    "NoncePolicy",
    "PresignConfig",
    "RsaPadding",
    "ServerConfig",
    "StoreConfig",
    "TokenConfig",
    "UnknownAnswer",
    "load_config",
    "parse_config",
    "resolve_config",
]
