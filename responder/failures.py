"""Telling a failure to retry from a cancellation to obey, for loops that must survive.

`except Exception` around code that opens a nursery has a hole: when a store call fails
while a sibling task is being cancelled, the nursery raises a BaseExceptionGroup of the
error and a Cancelled, which `except Exception` does not catch, and the loop meant to
retry dies with the process (the demo ended this way when its store died during the
start-up pre-sign). `recoverable` says whether such an exception is a failure the loop
should log and retry: every leaf is an Exception or a stray Cancelled, and this task is
not itself being cancelled (then the Cancelled must reach its scope).
"""

import math

import trio


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def recoverable(exc: BaseException) -> bool:
    if isinstance(exc, Exception) and not isinstance(exc, BaseExceptionGroup):
        return True
    if trio.current_effective_deadline() == -math.inf:
        return False  # we are being cancelled: let it unwind
    leaves = _leaves(exc)
    return any(isinstance(leaf, Exception) for leaf in leaves) and all(
        isinstance(leaf, Exception | trio.Cancelled) for leaf in leaves
    )


def describe(exc: BaseException) -> str:
    """The failures inside `exc`, for a log line."""
    errors = [leaf for leaf in _leaves(exc) if isinstance(leaf, Exception)]
    return "; ".join(f"{type(e).__name__}: {e}" for e in errors) or type(exc).__name__
