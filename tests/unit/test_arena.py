"""The host's shared answer arena (responder/answers/arena.py) and CachedSource with it:
what is written is read back by another process's view, an invalidation or a clear
kills answers whichever process wrote them, an answer read before a change is never
served, records a lap behind are gone, a silent owner stops all serving, a full disk
is an error at creation."""

import os
from pathlib import Path

import pytest
import trio

from responder.answers.answer import TryLater
from responder.answers.arena import OWNER_STALE, RECORD, Arena, ArenaError, url_hash
from responder.answers.cache import AnswerCache, CachedSource

from .fakes import START, Clock, Scripted, answer, question, runtime

NOW = int(START)


def made(tmp_path: Path, ring: int = 1 << 20) -> Arena:
    arena = Arena.create(tmp_path / "answers.arena", ring)
    arena.beat(NOW)
    return arena


def put(arena: Arena, url: bytes, serial: int, der: bytes = b"der", ttl: int = 600) -> bool:
    return arena.put(url, arena.snapshot(serial), der, NOW - 10, NOW + 3600, NOW + ttl, 1)


def test_what_one_process_writes_another_reads(tmp_path: Path) -> None:
    owner = made(tmp_path)
    assert put(owner, b"/x", 7, b"\x30\x03answer")
    worker = Arena.attach(owner.path)  # a second mapping of the same file
    record = worker.lookup(b"/x", NOW)
    assert record is not None
    assert (record.der, record.status, record.refresh_at) == (b"\x30\x03answer", 1, NOW + 600)
    assert record.digest == __import__("hashlib").sha256(b"\x30\x03answer").digest()
    assert worker.lookup(b"/y", NOW) is None
    owner.beat(NOW + 3600)  # the owner keeps beating while time passes
    assert worker.lookup(b"/x", NOW + 600) is None  # refresh time reached
    assert worker.lookup(b"/x", NOW + 600, stale_ok=True) is not None  # store down
    assert worker.lookup(b"/x", NOW + 3600, stale_ok=True) is None  # nextUpdate passed
    worker.close()
    owner.close()


def test_invalidate_and_clear_kill_answers_whoever_wrote_them(tmp_path: Path) -> None:
    owner = made(tmp_path)
    worker = Arena.attach(owner.path)
    put(worker, b"/a", 1)
    put(worker, b"/a-other-encoding", 1)
    put(worker, b"/b", 2)
    owner.invalidate(1)
    assert worker.lookup(b"/a", NOW) is None
    assert worker.lookup(b"/a-other-encoding", NOW) is None
    assert worker.lookup(b"/b", NOW) is not None
    owner.clear()
    assert worker.lookup(b"/b", NOW) is None
    # written again after the change: served
    assert put(worker, b"/a", 1)
    assert owner.lookup(b"/a", NOW) is not None
    worker.close()
    owner.close()


def test_an_answer_read_before_a_change_is_not_stored(tmp_path: Path) -> None:
    arena = made(tmp_path)
    before = arena.snapshot(5)  # taken, then the store is read ...
    arena.invalidate(5)  # ... and the revocation lands meanwhile
    assert not arena.put(b"/five", before, b"old", NOW, NOW + 3600, NOW + 600, 0)
    assert arena.lookup(b"/five", NOW) is None
    cleared = arena.snapshot(6)
    arena.clear()
    assert not arena.put(b"/six", cleared, b"old", NOW, NOW + 3600, NOW + 600, 0)
    arena.close()


def test_a_silent_owner_means_nothing_is_served(tmp_path: Path) -> None:
    arena = made(tmp_path)
    put(arena, b"/x", 1)
    assert arena.lookup(b"/x", NOW + 1) is not None
    assert arena.lookup(b"/x", NOW + int(OWNER_STALE) + 1) is None
    arena.beat(NOW + 20)
    assert arena.lookup(b"/x", NOW + 21) is not None
    arena.close()


def test_records_a_lap_behind_are_gone_and_the_newest_are_kept(tmp_path: Path) -> None:
    arena = made(tmp_path, 1 << 16)
    der = b"\x30" * 1000
    urls = [b"/n%d" % n for n in range(200)]  # about three laps of a 64 KiB ring
    for n, url in enumerate(urls):
        assert put(arena, url, n, der)
    used, writes = arena.stats()
    assert used == arena.layout.ring_size and writes == 200
    assert arena.lookup(urls[0], NOW) is None
    assert arena.lookup(urls[-1], NOW) is not None
    kept = sum(arena.lookup(url, NOW) is not None for url in urls)
    per_lap = arena.layout.ring_size // (RECORD.size + 5 + 1000)
    assert per_lap - 8 <= kept <= per_lap + 1


def test_a_record_being_overwritten_is_not_served(tmp_path: Path) -> None:
    """A writer announces the bytes it is about to write before writing them; a reader
    that copied a record in that region discards the copy."""
    import struct

    arena = made(tmp_path, 1 << 16)
    put(arena, b"/x", 1)
    assert arena.lookup(b"/x", NOW) is not None
    # what a writer one lap ahead, mid-write over /x's bytes, has announced
    struct.pack_into("<Q", arena.mm, 136, arena.layout.ring_size + 8)
    assert arena.lookup(b"/x", NOW) is None
    arena.close()


def test_garbage_in_the_index_or_a_record_is_a_miss_never_a_wrong_answer(
    tmp_path: Path,
) -> None:
    arena = made(tmp_path)
    put(arena, b"/x", 1)
    layout = arena.layout
    h = url_hash(b"/y")
    slot = layout.index_offset + (h & (layout.index_slots - 1)) * 16
    # a slot for /y pointing at /x's record: the URL check refuses it
    arena.mm[slot : slot + 16] = h.to_bytes(8, "little") + (1).to_bytes(8, "little")
    assert arena.lookup(b"/y", NOW) is None
    # a slot pointing past everything written
    arena.mm[slot : slot + 16] = h.to_bytes(8, "little") + (1 << 40).to_bytes(8, "little")
    assert arena.lookup(b"/y", NOW) is None
    assert arena.lookup(b"/x", NOW) is not None
    arena.close()


def test_too_large_for_the_ring_is_not_stored(tmp_path: Path) -> None:
    arena = made(tmp_path, 1 << 16)
    assert not put(arena, b"/big", 1, b"\x30" * (1 << 15))
    arena.close()


def test_create_fails_cleanly_without_room_and_attach_refuses_strangers(tmp_path: Path) -> None:
    with pytest.raises(ArenaError, match="cannot allocate"):
        Arena.create(tmp_path / "huge.arena", 1 << 62)
    assert not list(tmp_path.glob("huge.arena*"))
    stranger = tmp_path / "stranger"
    stranger.write_bytes(b"x" * 8192)
    with pytest.raises(ArenaError, match="not a revocd answer cache"):
        Arena.attach(stranger)
    with pytest.raises(ArenaError, match="cannot open"):
        Arena.attach(tmp_path / "missing")


def test_a_new_run_replaces_the_file_and_remove_leaves_a_newer_one(tmp_path: Path) -> None:
    first = made(tmp_path)
    put(first, b"/x", 1)
    second = Arena.create(first.path, 1 << 20)  # revocd started again
    second.beat(NOW)
    assert Arena.attach(first.path).lookup(b"/x", NOW) is None
    first.remove()  # the old owner stopping must not delete the new file
    assert second.path.exists()
    second.remove()
    assert not second.path.exists()
    assert os.listdir(tmp_path) == []


# --- CachedSource with the arena ---------------------------------------------------------


def shared_chain(
    tmp_path: Path, results: list
) -> tuple[CachedSource, Scripted, AnswerCache, Arena]:  # type: ignore[type-arg]
    clock = Clock()
    cache = AnswerCache(100, clock=clock)
    arena = made(tmp_path)
    inner = Scripted(results)
    return CachedSource(inner, cache, arena), inner, cache, arena


def test_get_answers_go_to_the_arena_not_the_process(tmp_path: Path) -> None:
    rt, _ = runtime()
    source, inner, cache, arena = shared_chain(tmp_path, [answer(7)])
    got = trio.run(source.answer, question(rt, 7, target=b"/seven"))
    assert len(cache) == 0
    record = arena.lookup(b"/seven", NOW)
    assert record is not None and record.der == got.der and record.status == 0
    # POST (no target): the process's cache, as without the arena
    trio.run(source.answer, question(rt, 7))
    assert len(cache) == 1 and len(inner.asked) == 2


def test_a_change_during_the_store_read_keeps_the_answer_out_of_the_arena(
    tmp_path: Path,
) -> None:
    rt, _ = runtime()
    clock = Clock()
    arena = made(tmp_path)

    class Racing(Scripted):
        async def answer(self, q):  # type: ignore[no-untyped-def]
            arena.invalidate(7)  # the owner applies the revocation meanwhile
            return await super().answer(q)

    source = CachedSource(Racing([answer(7)]), AnswerCache(100, clock=clock), arena)
    trio.run(source.answer, question(rt, 7, target=b"/seven"))
    assert arena.lookup(b"/seven", NOW) is None


def test_store_down_serves_the_arenas_answer_until_next_update(tmp_path: Path) -> None:
    rt, _ = runtime()
    source, _inner, cache, arena = shared_chain(tmp_path, [answer(7)])
    first = trio.run(source.answer, question(rt, 7, target=b"/seven"))
    source.inner = Scripted([TryLater("store down", stale_ok=True)])
    cache.clock.now = first.refresh_at + 1  # type: ignore[attr-defined]
    arena.beat(first.refresh_at + 1)
    stale = trio.run(source.answer, question(rt, 7, target=b"/seven"))
    assert stale.der == first.der and stale.source == "cache"
    source.inner = Scripted([TryLater("overloaded")])  # not stale_ok: no stand-in
    with pytest.raises(TryLater):
        trio.run(source.answer, question(rt, 7, target=b"/seven"))


def test_arenas_left_by_a_dead_revocd_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    import struct
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone_pid = int(dead.stdout)
    left = Arena.create(tmp_path / "revocd-left.arena", 1 << 16)
    struct.pack_into("<d", left.mm, 152, NOW - 3600)  # last beat an hour ago
    struct.pack_into("<Q", left.mm, 160, gone_pid)  # by a process that is gone
    left.close()
    quiet = Arena.create(tmp_path / "revocd-quiet.arena", 1 << 16)
    struct.pack_into("<d", quiet.mm, 152, NOW - 3600)  # silent, but its owner lives
    quiet.close()
    fresh = Arena.create(tmp_path / "revocd-fresh.arena", 1 << 16)
    fresh.beat(NOW)
    (tmp_path / "revocd-other.arena").write_bytes(b"not ours")
    removed = Arena.sweep_stale(tmp_path, now=NOW)
    assert removed == [tmp_path / "revocd-left.arena"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "revocd-fresh.arena",
        "revocd-other.arena",
        "revocd-quiet.arena",
    ]
    fresh.close()
