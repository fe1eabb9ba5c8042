"""responder/failures.py: which exceptions a must-survive loop retries."""

import trio

from responder.failures import describe, recoverable


def test_plain_errors_and_groups_with_stray_cancellations_are_recoverable():
    async def main() -> list[bool]:
        out = []
        out.append(recoverable(ConnectionError("store gone")))

        # the shape a nursery raised when a store call failed while a sibling was being
        # cancelled (the demo's start-up pre-sign died of it)
        async def fail() -> None:
            raise ConnectionError("store gone")

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fail)
                await trio.sleep_forever()
        except BaseException as exc:
            out.append(recoverable(exc))
            assert "ConnectionError: store gone" in describe(exc)
        group = BaseExceptionGroup("both", [ConnectionError("x"), _cancelled()])
        out.append(recoverable(group))
        out.append(recoverable(BaseExceptionGroup("only", [_cancelled()])))
        out.append(recoverable(KeyboardInterrupt()))
        return out

    assert trio.run(main) == [True, True, True, False, False]


def test_nothing_is_recoverable_while_this_task_is_being_cancelled():
    async def main() -> bool:
        with trio.CancelScope() as scope:
            scope.cancel()
            return recoverable(BaseExceptionGroup("g", [ValueError("x"), _cancelled()]))
        return True

    assert trio.run(main) is False


def _grab_cancelled() -> BaseException:
    # trio.Cancelled cannot be made directly; take a real one, outside any run
    caught: list[BaseException] = []

    async def grab() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                await trio.sleep(1)
            except trio.Cancelled as exc:
                caught.append(exc)
                raise

    trio.run(grab)
    return caught[0]


CANCELLED = _grab_cancelled()


def _cancelled() -> BaseException:
    return CANCELLED
