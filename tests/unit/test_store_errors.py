"""The one place driver errors become StoreError (responder/store/errors.py)."""

import coredis.exceptions
import pytest
import trio

from responder.store.errors import (
    DurabilityError,
    StoreError,
    StoreUnavailable,
    maps_driver_errors,
    translate,
)


def test_each_driver_error_has_its_kind():
    assert isinstance(translate(coredis.exceptions.ConnectionError("gone"), "x"), StoreUnavailable)
    assert isinstance(translate(TimeoutError(), "x"), StoreUnavailable)
    assert isinstance(translate(ConnectionResetError(), "x"), StoreUnavailable)
    assert isinstance(
        translate(coredis.exceptions.BusyLoadingError("loading"), "x"), StoreUnavailable
    )
    assert isinstance(
        translate(coredis.exceptions.PersistenceError(b"FCALL", 1, 0, 2000), "x"), DurabilityError
    )
    plain = translate(coredis.exceptions.ResponseError("NOSCRIPT"), "apply events")
    assert type(plain) is StoreError and str(plain).startswith("apply events: store error")
    assert translate(ValueError("a bug"), "x") is None


def test_a_nursery_of_driver_errors_is_one_store_error_but_not_with_a_bug_inside():
    both = BaseExceptionGroup("reads", [coredis.exceptions.ConnectionError("a"), OSError("b")])
    assert isinstance(translate(both, "get records"), StoreUnavailable)
    mixed = BaseExceptionGroup("reads", [coredis.exceptions.ConnectionError("a"), KeyError("k")])
    assert translate(mixed, "get records") is None


def test_public_coroutines_raise_store_errors_and_private_ones_are_left_alone():
    @maps_driver_errors
    class Fake:
        async def read(self) -> None:
            raise coredis.exceptions.ConnectionError("refused")

        async def bug(self) -> None:
            raise KeyError("not the store's")

        async def _inner(self) -> None:
            raise coredis.exceptions.ConnectionError("refused")

    with pytest.raises(StoreUnavailable, match="read: store not answering: refused"):
        trio.run(Fake().read)
    with pytest.raises(KeyError):
        trio.run(Fake().bug)
    with pytest.raises(coredis.exceptions.ConnectionError):
        trio.run(Fake()._inner)
