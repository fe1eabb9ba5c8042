"""The purge requests revocd builds for each CDN, held to each provider's documented
API: method, URL, authentication and body, byte for byte. These are not run against
the live services (docs/cdn.md says so); the http kind is, against a real Varnish
(tests/e2e/test_cdn_varnish.py)."""

import json

import pytest

from responder.cdn import providers
from responder.cdn.providers import EdgeGridCredentials, TokenBucket, batches, build
from responder.cdn.tags import CdnHeaders, crl_tag, issuer_tag, serial_tag
from responder.config import ConfigError
from responder.config.model import PurgeKind, PurgeTargetConfig, TagHeader

TAGS = ("rv-demo-s-1a", "rv-demo-s-2b")


def target(kind: PurgeKind, **kw: object) -> PurgeTargetConfig:
    return PurgeTargetConfig(name="t", kind=kind, **kw)  # type: ignore[arg-type]


def test_http_purge_puts_the_tags_in_the_configured_header():
    req = build(target(PurgeKind.HTTP, url="http://edge:6081/"), TAGS)
    assert (req.method, req.url, req.body) == ("PURGE", "http://edge:6081/", b"")
    assert req.headers == {"xkey-purge": "rv-demo-s-1a rv-demo-s-2b"}
    ban = build(target(PurgeKind.HTTP, url="http://e/", method="BAN", purge_header="x-ban"), TAGS)
    assert ban.method == "BAN" and ban.headers == {"x-ban": "rv-demo-s-1a rv-demo-s-2b"}


def test_fastly_surrogate_key_batch_purge():
    # POST /service/{service_id}/purge, Fastly-Key, {"surrogate_keys": [...]}
    req = build(target(PurgeKind.FASTLY, service_id="SU1Z0isxPaozGVKXdv0eY", soft=True), TAGS, "k")
    assert req.method == "POST"
    assert req.url == "https://api.fastly.com/service/SU1Z0isxPaozGVKXdv0eY/purge"
    assert req.headers["Fastly-Key"] == "k" and req.headers["Fastly-Soft-Purge"] == "1"
    assert json.loads(req.body) == {"surrogate_keys": list(TAGS)}


def test_cloudflare_purge_by_tag():
    # POST /client/v4/zones/{zone_id}/purge_cache, Bearer token, {"tags": [...]}
    req = build(target(PurgeKind.CLOUDFLARE, zone_id="023e105f4ecef8ad9ca31a8372d0c353"), TAGS, "t")
    assert req.url == (
        "https://api.cloudflare.com/client/v4/zones/023e105f4ecef8ad9ca31a8372d0c353/purge_cache"
    )
    assert req.headers["Authorization"] == "Bearer t"
    assert json.loads(req.body) == {"tags": list(TAGS)}
    assert providers.accepted(PurgeKind.CLOUDFLARE, 200, b'{"success":true,"result":{}}')
    assert not providers.accepted(PurgeKind.CLOUDFLARE, 200, b'{"success":false}')
    assert not providers.accepted(PurgeKind.CLOUDFLARE, 200, b"not json")


# Akamai's published EdgeGrid test vectors (AkamaiOPEN-edgegrid-python,
# akamai/edgegrid/test/testdata.json): credentials, nonce, timestamp, expected headers.
VECTOR = EdgeGridCredentials(
    "akaa-baseurl-xxxxxxxxxxx-xxxxxxxxxxxxx.luna.akamaiapis.net",
    "akab-client-token-xxx-xxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=",
    "akab-access-token-xxx-xxxxxxxxxxxxxxxx",
)
NONCE = "nonce-xx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
STAMP = 1395430461  # 20140321T19:34:21+0000
HEAD = (
    "EG1-HMAC-SHA256 client_token=akab-client-token-xxx-xxxxxxxxxxxxxxxx;"
    "access_token=akab-access-token-xxx-xxxxxxxxxxxxxxxx;timestamp=20140321T19:34:21+0000;"
    "nonce=nonce-xx-xxxx-xxxx-xxxx-xxxxxxxxxxxx;signature="
)


@pytest.mark.parametrize(
    ("method", "path", "body", "signature"),
    [
        ("GET", "/", b"", "tL+y4hxyHxgWVD30X3pWnGKHcPzmrIF+LThiAOhMxYU="),
        ("GET", "/testapi/v1/t1?p1=1&p2=2", b"", "hKDH1UlnQySSHjvIcZpDMbQHihTQ0XyVAKZaApabdeA="),
        (
            "POST",
            "/testapi/v1/t3",
            b"datadatadatadatadatadatadatadata",
            "hXm4iCxtpN22m4cbZb4lVLW5rhX8Ca82vCFqXzSTPe4=",
        ),
        ("POST", "/testapi/v1/t6", b"", "1gEDxeQGD5GovIkJJGcBaKnZ+VaPtrc4qBUHixjsPCQ="),
    ],
)
def test_edgegrid_signature_matches_akamais_test_vectors(method, path, body, signature):
    url = f"https://{VECTOR.host}{path}"
    got = providers.edgegrid_authorization(VECTOR, method, url, body, STAMP, NONCE)
    assert got == HEAD + signature


def test_akamai_fast_purge_by_tag():
    req = build(target(PurgeKind.AKAMAI), TAGS, credentials=VECTOR, now=STAMP, nonce=NONCE)
    assert req.url == f"https://{VECTOR.host}/ccu/v3/delete/tag/production"
    assert json.loads(req.body) == {"objects": list(TAGS)}
    assert req.headers["Authorization"].startswith(HEAD)
    soft = build(target(PurgeKind.AKAMAI, soft=True, network="staging"), TAGS, credentials=VECTOR)
    assert soft.url.endswith("/ccu/v3/invalidate/tag/staging")


def test_edgerc_is_read_and_its_gaps_named():
    text = "[default]\nhost = h\nclient_token = c\nclient_secret = s\naccess_token = a\n"
    assert EdgeGridCredentials.from_edgerc(text) == EdgeGridCredentials("h", "c", "s", "a")
    with pytest.raises(ValueError, match="lacks access_token"):
        EdgeGridCredentials.from_edgerc(
            "[default]\nhost = h\nclient_token = c\nclient_secret = s\n"
        )


def test_batches_keep_to_each_providers_limits():
    tags = [f"rv-demo-s-{i:x}" for i in range(1000)]
    for kind, per in (
        (PurgeKind.FASTLY, 256),
        (PurgeKind.CLOUDFLARE, 100),
        (PurgeKind.AKAMAI, 200),
    ):
        got = batches(target(kind), tags)
        assert [t for b in got for t in b] == tags
        assert max(len(b) for b in got) == per
    http = batches(
        target(PurgeKind.HTTP, url="http://e/"), [f"rv-x-s-{'f' * 60}{i}" for i in range(500)]
    )
    assert all(len(" ".join(b)) <= providers.HTTP_HEADER_BUDGET for b in http)
    assert batches(target(PurgeKind.FASTLY, max_tags_per_request=3), tags[:7]) == [
        tuple(tags[0:3]),
        tuple(tags[3:6]),
        (tags[6],),
    ]


def test_token_bucket_holds_akamais_tag_rate():
    now = [0.0]
    bucket = TokenBucket(500, 5000, clock=lambda: now[0])
    assert bucket.take(5000) == 0  # the full bucket at once
    wait = bucket.take(500)
    assert wait == pytest.approx(60.0)  # then 500 per minute
    now[0] += 30
    assert bucket.take(250) == 0
    assert bucket.take(1) > 0
    assert TokenBucket(0, 0).take(10**6) == 0  # no documented limit: never waits


def test_tags_and_cdn_headers():
    assert (issuer_tag("demo"), serial_tag("demo", 0x1A), crl_tag("demo", 3)) == (
        "rv-demo",
        "rv-demo-s-1a",
        "rv-demo-crl-3",
    )
    xkey = CdnHeaders(TagHeader.XKEY, 86400).lines(("a", "b"), 3600)
    assert xkey == [(b"xkey", b"a b"), (b"CDN-Cache-Control", b"max-age=3600")]
    cf = CdnHeaders(TagHeader.CACHE_TAG).lines(("a", "b"), 10)
    assert cf == [(b"Cache-Tag", b"a,b")]
    # an expired answer is never kept
    assert CdnHeaders(TagHeader.NONE, 60).lines((), -5) == [(b"CDN-Cache-Control", b"max-age=0")]
    assert not CdnHeaders().enabled


def test_each_kind_says_what_it_lacks():
    from pathlib import Path

    from responder.config.load import parse_config

    def cdn(item: dict) -> None:
        parse_config({"cdn": {"purge": [{"name": "x", **item}]}}, Path("/tmp"))

    for item, key in (
        ({}, "url"),
        ({"kind": "fastly"}, "service_id"),
        ({"kind": "fastly", "service_id": "s"}, "token_env"),
        ({"kind": "cloudflare"}, "zone_id"),
        ({"kind": "akamai"}, "credentials_file"),
        ({"url": "ftp://x"}, "url"),
        ({"url": "http://x/", "method": "purge"}, "method"),
        ({"kind": "nope"}, "kind"),
    ):
        with pytest.raises(ConfigError, match=rf"cdn\.purge\[0\]\.{key}"):
            cdn(item)
    with pytest.raises(ConfigError, match=r"name.*twice"):
        parse_config(
            {
                "cdn": {
                    "purge": [{"name": "x", "url": "http://a/"}, {"name": "x", "url": "http://b/"}]
                }
            },
            Path("/tmp"),
        )


def test_a_missing_token_or_credentials_file_stops_start_up_naming_it(tmp_path, monkeypatch):
    from responder.cdn.purger import load_secrets

    monkeypatch.delenv("REVOCD_TEST_NO_SUCH_TOKEN", raising=False)
    fastly = target(PurgeKind.FASTLY, service_id="s", token_env="REVOCD_TEST_NO_SUCH_TOKEN")
    with pytest.raises(ConfigError, match="REVOCD_TEST_NO_SUCH_TOKEN unset"):
        load_secrets(fastly)
    monkeypatch.setenv("REVOCD_TEST_NO_SUCH_TOKEN", "tok")
    assert load_secrets(fastly) == ("tok", None)
    akamai = target(PurgeKind.AKAMAI, credentials_file=tmp_path / "missing.edgerc")
    with pytest.raises(ConfigError, match=r"cdn\.purge t"):
        load_secrets(akamai)
