"""The purger against a real valkey-server, with a recording sender in place of the
CDN: what it purges for which change, that positions move only after the CDN said
yes (a refusal or a 429 re-sends everything next time), whole-issuer purges for bursts,
trimmed streams and first starts, and the CRL queue. tests/e2e/test_cdn_varnish.py
runs it against a real Varnish."""

from pathlib import Path

import pytest
import trio

from responder.cdn.purger import PurgeFailed, Purger
from responder.config import StoreConfig, parse_config
from responder.ingest import Ingestor
from responder.store import Store

from ..store_helpers import issued, revoked


class Edge:
    """Records each purge request; answers what `replies` says (200 when empty)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.replies: list[tuple[int, bytes, dict[str, str]]] = []

    def __call__(self, req, timeout):  # type: ignore[no-untyped-def]
        self.requests.append((req.method, req.url, dict(req.headers)))
        return self.replies.pop(0) if self.replies else (200, b"purged", {})

    def tags(self) -> list[str]:
        out: list[str] = []
        for _, _, headers in self.requests:
            out += headers.get("xkey-purge", "").split()
        return out


def setup(tmp_path: Path, threshold: int = 1000, feed_maxlen: int = 100_000):
    raw = {
        "store": {"feed_maxlen": feed_maxlen},
        "issuers": {"pa": {"certificate": "pa.pem", "partitions": 2, "policy": "private"}},
        "cdn": {
            "tag_header": "xkey",
            "purge_delay_ms": 0,
            "issuer_purge_threshold": threshold,
            "purge": [{"name": "edge", "url": "http://edge.test/"}],
        },
    }
    return parse_config(raw, base=tmp_path)


def run(valkey_url: str, config, body):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        settings = StoreConfig(url=valkey_url, feed_maxlen=config.store.feed_maxlen)
        async with Store.open(valkey_url, settings) as store:
            # a fresh issuer name per test: the session's server is shared
            await store.register_issuers(config.issuers.values())
            edge = Edge()
            purger = Purger(store, config, sender=edge)
            target = purger.targets[0]
            ingest = Ingestor(store, config.issuers)
            return await body(store, ingest, purger, target, edge)

    return trio.run(main)


@pytest.fixture
def fresh(tmp_path, valkey_standalone):
    """A config whose issuer name no earlier test used."""
    import uuid

    def make(**kw):  # type: ignore[no-untyped-def]
        config = setup(tmp_path, **kw)
        name = "p" + uuid.uuid4().hex[:10]
        issuer = config.issuers.pop("pa")
        from dataclasses import replace

        config.issuers[name] = replace(issuer, name=name)
        return config, name

    return make, valkey_standalone.url


async def full_pass(purger: Purger, target) -> bool:  # type: ignore[no-untyped-def]
    """One pass over every partition (in service, the change feed says which partitions
    changed, and every partition is looked at every 30 s)."""
    target.last_full = -1e9
    return await purger.purge_once(target)


async def push(ingest: Ingestor, events: list[dict]) -> None:
    results = await ingest.submit(events, None)
    assert all(r.result == "applied" for r in results), [r.to_json() for r in results]


def test_first_start_purges_the_issuer_then_each_revocation_its_serial(fresh):
    make, url = fresh
    config, name = make()

    async def body(store, ingest, purger, target, edge):  # type: ignore[no-untyped-def]
        await push(ingest, [issued(s, name) for s in (1, 2, 3)])
        await full_pass(purger, target)
        assert edge.tags() == [f"rv-{name}"]  # nothing says what the CDN holds yet
        edge.requests.clear()
        await push(ingest, [issued(4, name)])
        await full_pass(purger, target)
        assert edge.requests == []  # an issuance is not purged
        await push(ingest, [revoked(2, name), revoked(4, name, reason="certificateHold")])
        await full_pass(purger, target)
        assert sorted(edge.tags()) == [f"rv-{name}-s-2", f"rv-{name}-s-4"]
        edge.requests.clear()
        await push(ingest, [{"type": "unrevoked", "issuer": name, "serial": "4"}])
        await full_pass(purger, target)
        assert edge.tags() == [f"rv-{name}-s-4"]  # a lifted hold changes the answer too
        edge.requests.clear()
        await full_pass(purger, target)
        assert edge.requests == []  # nothing twice

    run(url, config, body)


def test_a_refusal_moves_nothing_and_everything_is_sent_again(fresh):
    make, url = fresh
    config, name = make()

    async def body(store, ingest, purger, target, edge):  # type: ignore[no-untyped-def]
        await push(ingest, [issued(s, name) for s in (5, 6)])
        await full_pass(purger, target)
        edge.requests.clear()
        await push(ingest, [revoked(5, name)])
        edge.replies = [(503, b"busy", {})]
        with pytest.raises(PurgeFailed, match="HTTP 503"):
            await full_pass(purger, target)
        edge.replies = [(429, b"", {"Retry-After": "7"})]
        with pytest.raises(PurgeFailed) as info:
            await full_pass(purger, target)
        assert info.value.retry_after == 7.0
        # a new process (the lease moved) starts from the stored positions
        fresh_purger = Purger(store, config, sender=edge)
        edge.requests.clear()
        await full_pass(fresh_purger, fresh_purger.targets[0])
        assert edge.tags() == [f"rv-{name}-s-5"]

    run(url, config, body)


def test_a_burst_is_one_issuer_purge(fresh):
    make, url = fresh
    config, name = make(threshold=10)

    async def body(store, ingest, purger, target, edge):  # type: ignore[no-untyped-def]
        serials = list(range(100, 150))
        await push(ingest, [issued(s, name) for s in serials])
        await full_pass(purger, target)
        edge.requests.clear()
        await push(ingest, [revoked(s, name) for s in serials])
        await full_pass(purger, target)
        assert edge.tags() == [f"rv-{name}"]

    run(url, config, body)


def test_a_stream_trimmed_past_the_position_purges_the_issuer(fresh):
    make, url = fresh
    config, name = make(feed_maxlen=100)

    async def body(store, ingest, purger, target, edge):  # type: ignore[no-untyped-def]
        await push(ingest, [issued(1, name)])
        await full_pass(purger, target)
        edge.requests.clear()
        # far more changes than the stream keeps, while the CDN was not told
        for start in range(1000, 3000, 500):
            await push(ingest, [issued(s, name) for s in range(start, start + 500)])
        await push(ingest, [revoked(1001, name)])
        await full_pass(purger, target)
        assert edge.tags()[0] == f"rv-{name}"

    run(url, config, body)


def test_crl_publications_are_purged_from_the_queue_once(fresh):
    make, url = fresh
    config, name = make()

    async def body(store, ingest, purger, target, edge):  # type: ignore[no-untyped-def]
        await full_pass(purger, target)
        edge.requests.clear()
        await store.queue_purge([f"rv-{name}-crl-0"], "crl test #1")
        await full_pass(purger, target)
        assert f"rv-{name}-crl-0" in edge.tags()
        edge.requests.clear()
        await full_pass(purger, target)
        assert f"rv-{name}-crl-0" not in edge.tags()

    run(url, config, body)
