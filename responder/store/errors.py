"""What can go wrong with the store, as revocd's callers see it, and the one place that
turns the driver's errors (coredis, sockets, nurseries wrapping them) into these.

Every public coroutine of `Store` goes through `maps_driver_errors`, so a caller needs
to know only `StoreError` and its two kinds: the store is not answering
(`StoreUnavailable`: down, frozen, failing over; answer tryLater or 503 and retry), or
a write was not confirmed durable in time (`DurabilityError`: not acknowledged).
"""

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import coredis.exceptions


class StoreError(RuntimeError):
    """The store is unreachable or refused an operation."""


class StoreUnavailable(StoreError):
    """No answer from the store: connection refused or lost, or a deadline passed."""


class DurabilityError(StoreError):
    """A write was not confirmed on disk / on replicas in time: it is not acknowledged."""


_UNAVAILABLE = (
    coredis.exceptions.ConnectionError,
    coredis.exceptions.ClusterDownError,
    coredis.exceptions.TryAgainError,
    coredis.exceptions.BusyLoadingError,  # a restarted server still loading its AOF
    OSError,
    TimeoutError,
)


def translate(exc: BaseException, what: str) -> StoreError | None:
    """The StoreError for a driver error (None for anything else)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, coredis.exceptions.PersistenceError):
        return DurabilityError(f"{what}: write not confirmed durable: {exc}")
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"{what}: store not answering: {exc or type(exc).__name__}")
    if isinstance(exc, coredis.exceptions.RedisError):
        return StoreError(f"{what}: store error: {exc}")
    if isinstance(exc, BaseExceptionGroup):
        # A nursery of concurrent reads: one error for the caller if every leaf is one.
        leaves = [translate(e, what) for e in exc.exceptions]
        if leaves and all(leaf is not None for leaf in leaves):
            return leaves[0]
    return None


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
C = TypeVar("C", bound=type)


def _mapped(fn: F, what: str) -> F:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except StoreError:
            raise
        except BaseException as exc:
            mapped = translate(exc, what)
            if mapped is None:
                raise  # cancellation, a revocd bug: not the store's
            raise mapped from exc

    return wrapper  # type: ignore[return-value]


def maps_driver_errors(cls: C) -> C:
    """Wrap every public coroutine method of `cls` so driver errors leave as StoreError."""
    for name, fn in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(fn):
            setattr(cls, name, _mapped(fn, name.replace("_", " ")))
    return cls
