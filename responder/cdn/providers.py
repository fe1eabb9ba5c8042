"""The purge request each CDN takes, as values: method, URL, headers, body. Pure (the
clock and nonce are arguments), so every provider's shape is tested byte for byte
against its documented API without the live service; purger.py sends them.

What each provider documents (and what `LIMITS` holds):

- http (Varnish with vmod-xkey, nginx, others): one request per batch, the tags in a
  header (space-separated), the method the edge's configuration answers (PURGE, BAN).
  Varnish's default http_req_hdr_len is 8 KiB, so a batch's header stays under 6 KiB.
- Fastly: `POST /service/{id}/purge` with `{"surrogate_keys": [...]}`, at most 256
  keys per request, `Fastly-Key` authenticates, `Fastly-Soft-Purge: 1` marks stale.
- Cloudflare: `POST /client/v4/zones/{zone}/purge_cache` with `{"tags": [...]}`, a
  bearer token; at most 100 tags per request; requests are token-bucket limited per
  account by plan (Free: 5 per minute, a bucket of 25; the default here, the lowest;
  set requests_per_minute for a larger plan).
- Akamai Fast Purge v3: `POST /ccu/v3/delete/tag/{network}` (or invalidate) with
  `{"objects": [...]}`, EdgeGrid-signed (EG1-HMAC-SHA256), bodies under 50,000 bytes;
  tags are rate limited by a bucket of 5,000 refilling 500 per minute.
"""

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config.model import PurgeKind, PurgeTargetConfig


@dataclass(frozen=True, slots=True)
class Limits:
    tags_per_request: int
    requests_per_minute: int  # 0: no limit documented
    request_burst: int  # the request bucket's size
    tags_per_minute: int  # 0: no limit documented
    tag_burst: int  # the tag bucket's size


LIMITS = {
    PurgeKind.HTTP: Limits(200, 0, 0, 0, 0),
    PurgeKind.FASTLY: Limits(256, 0, 0, 0, 0),
    PurgeKind.CLOUDFLARE: Limits(100, 5, 25, 0, 0),
    # 200 tags of up to 128 characters stay under the 50,000-byte body limit
    PurgeKind.AKAMAI: Limits(200, 0, 0, 500, 5000),
}
# The http kind's header budget per request (see the module docstring).
HTTP_HEADER_BUDGET = 6 * 1024


@dataclass(frozen=True, slots=True)
class PurgeRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EdgeGridCredentials:
    host: str
    client_token: str
    client_secret: str
    access_token: str

    @classmethod
    def from_edgerc(cls, text: str, section: str = "default") -> "EdgeGridCredentials":
        import configparser

        parser = configparser.ConfigParser()
        parser.read_string(text)
        if not parser.has_section(section):
            raise ValueError(f"credentials_file: no [{section}] section")
        s = parser[section]
        missing = [
            k for k in ("host", "client_token", "client_secret", "access_token") if k not in s
        ]
        if missing:
            raise ValueError(f"credentials_file: [{section}] lacks {missing[0]}")
        return cls(s["host"], s["client_token"], s["client_secret"], s["access_token"])


def limits_of(target: PurgeTargetConfig) -> Limits:
    base = LIMITS[target.kind]
    requests = target.requests_per_minute or base.requests_per_minute
    tags = target.tags_per_minute or base.tags_per_minute
    return Limits(
        target.max_tags_per_request or base.tags_per_request,
        requests,
        base.request_burst if not target.requests_per_minute else max(1, requests // 12),
        tags,
        base.tag_burst if not target.tags_per_minute else max(1, tags * 10),
    )


def batches(target: PurgeTargetConfig, tags: Sequence[str]) -> list[tuple[str, ...]]:
    """`tags` cut into requests within the provider's per-request limit (and, for the
    http kind, the header budget)."""
    per = limits_of(target).tags_per_request
    out: list[tuple[str, ...]] = []
    current: list[str] = []
    size = 0
    for tag in tags:
        over_header = target.kind is PurgeKind.HTTP and size + len(tag) + 1 > HTTP_HEADER_BUDGET
        if current and (len(current) >= per or over_header):
            out.append(tuple(current))
            current, size = [], 0
        current.append(tag)
        size += len(tag) + 1
    if current:
        out.append(tuple(current))
    return out


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def build(
    target: PurgeTargetConfig,
    tags: tuple[str, ...],
    secret: str = "",
    credentials: EdgeGridCredentials | None = None,
    now: float | None = None,
    nonce: str | None = None,
) -> PurgeRequest:
    """The request purging `tags` at `target`. `secret`: the API token (fastly,
    cloudflare); `credentials`: akamai's; `now`/`nonce`: for EdgeGrid's signature."""
    kind = target.kind
    if kind is PurgeKind.HTTP:
        headers = {target.purge_header: " ".join(tags)} if target.purge_header else {}
        return PurgeRequest(target.method, target.url, headers, b"", tags)
    if kind is PurgeKind.FASTLY:
        base = (target.url or "https://api.fastly.com").rstrip("/")
        headers = {
            "Fastly-Key": secret,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        if target.soft:
            headers["Fastly-Soft-Purge"] = "1"
        body = _json({"surrogate_keys": list(tags)})
        return PurgeRequest(
            "POST", f"{base}/service/{target.service_id}/purge", headers, body, tags
        )
    if kind is PurgeKind.CLOUDFLARE:
        base = (target.url or "https://api.cloudflare.com").rstrip("/")
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        body = _json({"tags": list(tags)})
        url = f"{base}/client/v4/zones/{target.zone_id}/purge_cache"
        return PurgeRequest("POST", url, headers, body, tags)
    assert kind is PurgeKind.AKAMAI and credentials is not None
    host = urlsplit(target.url).netloc if target.url else credentials.host
    action = "invalidate" if target.soft else "delete"
    url = f"https://{host}/ccu/v3/{action}/tag/{target.network}"
    body = _json({"objects": list(tags)})
    auth = edgegrid_authorization(
        credentials, "POST", url, body, time.time() if now is None else now, nonce
    )
    headers = {"Content-Type": "application/json", "Authorization": auth}
    return PurgeRequest("POST", url, headers, body, tags)


# EdgeGrid hashes at most this much of a POST body (the client's max_body setting).
EDGEGRID_MAX_BODY = 131072


def edgegrid_authorization(
    creds: EdgeGridCredentials,
    method: str,
    url: str,
    body: bytes,
    now: float,
    nonce: str | None = None,
) -> str:
    """Akamai's EG1-HMAC-SHA256 Authorization header: the signing key is the HMAC of
    the timestamp under the client secret; the signature the HMAC, under that key, of
    the tab-joined method, scheme, host, path and query, (no) signed headers, the
    body's SHA-256 and the header so far."""
    stamp = time.strftime("%Y%m%dT%H:%M:%S+0000", time.gmtime(now))
    nonce = nonce or str(uuid.uuid4())
    head = (
        f"EG1-HMAC-SHA256 client_token={creds.client_token};"
        f"access_token={creds.access_token};timestamp={stamp};nonce={nonce};"
    )
    parts = urlsplit(url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    content_hash = ""
    if method == "POST" and body:
        digest = hashlib.sha256(body[:EDGEGRID_MAX_BODY]).digest()
        content_hash = base64.b64encode(digest).decode()
    data = "\t".join(
        [method.upper(), parts.scheme, parts.netloc.lower(), path, "", content_hash, head]
    )
    key = base64.b64encode(
        hmac.new(creds.client_secret.encode(), stamp.encode(), hashlib.sha256).digest()
    )
    signature = base64.b64encode(hmac.new(key, data.encode(), hashlib.sha256).digest()).decode()
    return head + "signature=" + signature


def accepted(kind: PurgeKind, status: int, body: bytes) -> bool:
    """Whether the provider says it took the purge. Varnish's xkey answers 200 (any
    2xx here); Fastly 200; Cloudflare 200 with success true; Akamai 201."""
    if not 200 <= status < 300:
        return False
    if kind is PurgeKind.CLOUDFLARE:
        try:
            return bool(json.loads(body).get("success"))
        except (ValueError, AttributeError):
            return False
    return True


class TokenBucket:
    """A provider's rate limit: `rate` per minute, at most `burst` saved up. `take(n)`
    says how long to wait before n may go (0: now, and they are taken)."""

    def __init__(self, rate: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate / 60.0
        self.burst = float(max(burst, 1))
        self.clock = clock
        self.level = self.burst
        self.at = clock()

    def take(self, n: int) -> float:
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        # A batch bigger than the bucket goes when the bucket is full.
        need = min(float(n), self.burst)
        if self.level >= need:
            self.level -= need
            return 0.0
        return (need - self.level) / self.rate
