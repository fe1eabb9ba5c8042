"""The status store: one abstraction over the Redis protocol, embedded Valkey by default."""

from .embedded import EmbeddedStore, EmbeddedStoreError, ValkeyProcess, valkey_binary
from .records import CertRecord, Status
from .store import Change, DurabilityError, PreSigned, Store, StoreError, open_client

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
    "ValkeyProcess",
    "open_client",
    "valkey_binary",
]
