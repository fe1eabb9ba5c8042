"""Leases (responder/store/leases.py) against a real valkey-server, standalone and a
3-master cluster: one holder at a time, extension by the holder only, takeover after
expiry, release, and no work done on a lease the store did not confirm."""

import trio

from responder.store import Store
from responder.store.leases import Leases


def test_one_holder_takeover_after_expiry_and_release(store_url):
    async def main() -> None:
        async with Store.open(store_url) as store:
            name = f"test:{trio.current_time()}"
            a = Leases(store, ttl=1.0, owner="a")
            b = Leases(store, ttl=1.0, owner="b")
            assert await a.hold(name)
            assert not await b.hold(name)  # held by a
            await trio.sleep(0.6)  # past a's trust (half the ttl): a asks and extends
            assert await a.hold(name)
            await trio.sleep(0.6)
            assert not await b.hold(name)  # a extended it: still a's
            await trio.sleep(1.2)  # a stops extending (a dead holder)
            assert await b.hold(name)  # b takes over
            # a, back from a pause, asks the store before acting and learns it lost it
            a._trusted_until.clear()
            assert not await a.hold(name)
            await b.release_all()
            assert await a.hold(name)  # given back: free at once

    trio.run(main)


def test_a_store_failure_means_not_held(tmp_path):
    from responder.store import ValkeyProcess

    server = ValkeyProcess(tmp_path / "v").start()

    async def main() -> bool:
        async with Store.open(server.url) as store:
            leases = Leases(store, ttl=1.0, owner="a")
            server.kill()
            return await leases.hold("x")

    try:
        assert trio.run(main) is False
    finally:
        server.kill()
