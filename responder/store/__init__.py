"""The status store: one abstraction over the Redis protocol, embedded Valkey by default."""

from ..domain.records import CertRecord, Status
from .embedded import EmbeddedStore, EmbeddedStoreError, ValkeyProcess, valkey_binary
from .errors import DurabilityError, StoreError, StoreUnavailable
from .store import Change, PreSigned, Store, open_client

__all__ = [
    "CertRecord",
    "Change",
    "DurabilityError",
    "EmbeddedStore",
    "EmbeddedStoreError",
    "PreSigned",
    "Status",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "ValkeyProcess",
    "open_client",
    "valkey_binary",
]
