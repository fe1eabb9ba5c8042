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


def test_balance_splits_leases_between_live_processes(store_url):
    """Each process holds its fair share: a newcomer gets half within two rounds, a third
    a third, and when one dies (stops saying it is alive) the others take its part."""

    async def main() -> None:
        async with Store.open(store_url) as store:
            group = f"g{trio.current_time()}"
            names = [f"{group}:{i}" for i in range(12)]
            a, b, c = (Leases(store, ttl=1.0, owner=o) for o in "abc")
            assert len(await a.balance(group, names)) == 12  # alone: everything
            assert await b.balance(group, names) == set()  # all held by a
            held_a = await a.balance(group, names)  # a sees two live: gives six back
            held_b = await b.balance(group, names)
            assert len(held_a) == len(held_b) == 6 and not held_a & held_b
            await c.balance(group, names)
            for _ in range(2):
                held = [await x.balance(group, names) for x in (a, b, c)]
            assert [len(h) for h in held] == [4, 4, 4]
            assert set().union(*held) == set(names)
            # c dies: after its word and its leases expire, a and b take its four.
            for _ in range(6):
                await trio.sleep(0.3)
                held = [await x.balance(group, names) for x in (a, b)]
            assert [len(h) for h in held] == [6, 6] and set().union(*held) == set(names)

    trio.run(main)
