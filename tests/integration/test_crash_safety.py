"""An acknowledged event survives SIGKILL of the store (the durability promise).

The embedded Valkey runs with appendfsync always and every acknowledgement
waits for WAITAOF, so whatever submit() reported as applied must be there
after a crash and restart, even when the kill lands while other batches are
still in flight.
"""

import os
import signal

import trio

from responder.store import Status, Store, ValkeyProcess

from ..store_helpers import ISSUERS, issued, revoked


async def _ingest_until_killed(
    server: ValkeyProcess, first_serial: int, acked: list[int], unacked: list[int]
) -> None:
    """Push batches concurrently and SIGKILL the server mid-stream, recording what was
    acknowledged and what was not."""
    from responder.ingest import Ingestor

    async with Store.open(server.url) as store:
        await store.register_issuers(ISSUERS.values())
        ingest = Ingestor(store, ISSUERS)

        async def pusher(offset: int) -> None:
            serial = first_serial + offset * 1_000_000
            while True:
                batch = [serial + i for i in range(25)]
                events = [issued(s) for s in batch] + [revoked(s) for s in batch[::5]]
                results = await ingest.submit(events)
                for result in results:
                    assert result.serial is not None
                    if result.result == "applied":
                        acked.append(result.serial)
                    elif result.result == "failed":
                        unacked.append(result.serial)
                if unacked:
                    return
                serial += 25

        async def killer() -> None:
            while len(acked) < 300:
                await trio.sleep(0.005)
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGKILL)

        with trio.move_on_after(60):
            async with trio.open_nursery() as nursery:
                for offset in range(4):
                    nursery.start_soon(pusher, offset)
                nursery.start_soon(killer)


def test_acknowledged_events_survive_sigkill(tmp_path):
    server = ValkeyProcess(tmp_path / "valkey").start()
    port = server.port
    try:
        acked: list[int] = []
        unacked: list[int] = []
        trio.run(_ingest_until_killed, server, 10_000, acked, unacked)
        server.kill()
        assert len(acked) >= 300, "the test must acknowledge events before the kill"
        assert unacked, "the kill must land while batches are in flight"

        restarted = ValkeyProcess(tmp_path / "valkey", port=port).start()

        async def check() -> dict:
            async with Store.open(restarted.url) as store:
                await store.register_issuers(ISSUERS.values())
                return await store.get_records("tls", sorted(set(acked)))

        records = trio.run(check)
        missing = sorted(set(acked) - set(records))
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
        revoked_serials = {s for s in acked if records[s].status is Status.REVOKED}
        assert revoked_serials, "revocations were acknowledged and must be found"
        restarted.stop()
    finally:
        server.kill()


def test_restart_keeps_everything_after_clean_stop(tmp_path):
    server = ValkeyProcess(tmp_path / "v").start()

    async def write() -> None:
        from responder.ingest import Ingestor

        async with Store.open(server.url) as store:
            await store.register_issuers(ISSUERS.values())
            results = await Ingestor(store, ISSUERS).submit([issued(7), revoked(7)])
            assert [r.result for r in results] == ["applied", "applied"]

    trio.run(write)
    server.stop()
    server.start()

    async def read():
        async with Store.open(server.url) as store:
            await store.register_issuers(ISSUERS.values())
            return await store.get_record("tls", 7)

    try:
        assert trio.run(read).status is Status.REVOKED
    finally:
        server.stop()
