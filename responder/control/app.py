"""The private control plane: an ASGI app served by hypercorn's trio worker on its own port.

    POST /v1/events                                    push issued/revoked/unrevoked events
    GET  /v1/issuers/{issuer}/certificates/{serial}    the stored status of one certificate
    GET  /v1/issuers/{issuer}/certificates/{serial}/propagation
                                                       when its revocation reached each
                                                       serving point (propagation/ledger.py)
    GET  /v1/inventory, /v1/inventory/expiry,
    POST /v1/revoke-by-key, GET /v1/blocked-keys,
    GET  /v1/campaigns, /v1/campaigns/{name}           the inventory (control/inventory.py)
    GET  /metrics                                      Prometheus exposition
    GET  /healthz                                      the process is alive
    GET  /readyz                                       store reachable, signers work

Bearer tokens are configured as SHA-256 hashes and scoped to issuers; docs/api/openapi.yaml
describes every route.
"""

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import trio
from prometheus_client import CONTENT_TYPE_LATEST

from ..answers.issuers import IssuerRuntime
from ..audit.trail import AuditTrail, Entry
from ..config import TokenConfig
from ..config.model import PropagationConfig
from ..ingest import BatchTooLarge, EventError, EventResult, Ingestor, parse_serial
from ..observability import metrics
from ..observability.export import exposition
from ..propagation.ledger import read_timeline
from ..store import Store, StoreError
from . import inventory, strictjson

log = logging.getLogger("revocd.control")
AUDIT_EVENT_BYTES = 4096  # larger pushed events are recorded by hash and size
# A status read waits this long for the store, then answers 503 (the store's own stream
# timeout is longer: it must cover WAITAOF).
READ_TIMEOUT = 2.0
RETRY = [(b"retry-after", b"1")]
# A campaign's CCADB counts read every one of its records (10,000 per HMGET round):
# 1.6-2 s per 100,000 on the benchmark machine (docs/benchmarks.md), so they get longer.
COUNT_TIMEOUT = 30.0

# Every route, as (method, path template); docs/api/openapi.yaml lists exactly these.
ROUTES = (
    ("POST", "/v1/events"),
    ("GET", "/v1/issuers/{issuer}/certificates/{serial}"),
    ("GET", "/v1/issuers/{issuer}/certificates/{serial}/propagation"),
    ("GET", "/v1/inventory"),
    ("GET", "/v1/inventory/expiry"),
    ("POST", "/v1/revoke-by-key"),
    ("GET", "/v1/blocked-keys"),
    ("GET", "/v1/campaigns"),
    ("GET", "/v1/campaigns/{name}"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
)

_INVENTORY_ROUTES = {
    "/v1/inventory": "GET",
    "/v1/inventory/expiry": "GET",
    "/v1/revoke-by-key": "POST",
    "/v1/blocked-keys": "GET",
    "/v1/campaigns": "GET",
}

T = TypeVar("T")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class HTTPError(Exception):
    def __init__(
        self, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


class ControlApp:
    def __init__(
        self,
        store: Store,
        ingest: Ingestor,
        issuers: Sequence[IssuerRuntime],
        tokens: Mapping[str, TokenConfig],
        max_body_bytes: int = 8 * 1024 * 1024,
        audit: AuditTrail | None = None,
        data_plane: Callable[[], tuple[int, int]] | None = None,
        clock: Callable[[], float] = time.time,
        propagation: PropagationConfig | None = None,
    ) -> None:
        self.propagation = propagation or PropagationConfig()
        self.clock = clock  # wall-clock time for the readiness checks; injectable for tests
        self.audit = audit or AuditTrail.disabled()
        # (workers serving, workers configured) when the data plane runs in worker
        # processes; None when it runs in this process (serving whenever this answers)
        self.data_plane = data_plane
        self.store = store
        self.ingest = ingest
        self.issuers = {i.name: i for i in issuers}
        self.tokens = list(tokens.values())
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        try:
            status, body, ctype, headers = await self._route(scope, receive)
        except HTTPError as exc:
            status, headers = exc.status, exc.headers
            body, ctype = _json({"error": exc.message}), b"application/json"
        except Exception:
            log.exception("control plane request failed")
            status, headers = 500, []
            body, ctype = _json({"error": "internal error"}), b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", ctype), (b"cache-control", b"no-store"), *headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _route(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        method, path = scope["method"], scope["path"]
        if path == "/healthz":
            _only(method, "GET")
            return 200, _json({"status": "ok"}), b"application/json", []
        if path == "/readyz":
            _only(method, "GET")
            ready, checks = await self.readiness()
            return (
                (200 if ready else 503),
                _json({"ready": ready, "checks": checks}),
                b"application/json",
                [],
            )
        if path == "/metrics":
            _only(method, "GET")
            return 200, exposition(), CONTENT_TYPE_LATEST.encode(), []
        if path == "/v1/events":
            _only(method, "POST")
            token = await self._authenticate(scope)
            return await self._events(scope, receive, token)
        parts = path.strip("/").split("/")
        if path in _INVENTORY_ROUTES or (len(parts) == 3 and parts[:2] == ["v1", "campaigns"]):
            _only(method, _INVENTORY_ROUTES.get(path, "GET"))
            token = await self._authenticate(scope)
            try:
                found = await self._inventory(path, scope, receive, token)
            except inventory.InventoryError as exc:
                raise HTTPError(exc.status, str(exc)) from None
            return 200, _json(found), b"application/json", []
        if len(parts) == 5 and parts[:2] == ["v1", "issuers"] and parts[3] == "certificates":
            _only(method, "GET")
            token = await self._authenticate(scope)
            return await self._certificate(parts[2], parts[4], token)
        if (
            len(parts) == 6
            and parts[:2] == ["v1", "issuers"]
            and parts[3] == "certificates"
            and parts[5] == "propagation"
        ):
            _only(method, "GET")
            token = await self._authenticate(scope)
            return await self._propagation(parts[2], parts[4], token)
        raise HTTPError(404, "no such endpoint")

    async def _inventory(
        self, path: str, scope: Scope, receive: Receive, token: TokenConfig
    ) -> dict[str, Any]:
        names = list(self.issuers)
        if path == "/v1/inventory":
            now = int(self.clock())
            return await self._read(
                lambda: inventory.list_inventory(
                    self.store, scope.get("query_string", b""), token, names, now
                )
            )
        if path == "/v1/inventory/expiry":
            return await self._read(lambda: inventory.expiry_summary(self.store, token, names))
        if path == "/v1/campaigns":
            return await self._read(lambda: inventory.list_campaigns(self.store, token, names))
        if path.startswith("/v1/campaigns/"):
            name, now = path.rsplit("/", 1)[1], int(self.clock())
            return await self._read(
                lambda: inventory.campaign_detail(self.store, name, token, names, now),
                COUNT_TIMEOUT,
            )
        if path == "/v1/blocked-keys":
            found = await self._read(lambda: self.store.blocked_keys())
            return {"blocked_keys": [{"spki_sha256": k, **v} for k, v in sorted(found.items())]}
        payload = await self._json_body(receive)
        client = (scope.get("client") or ("?", 0))[0]
        try:
            return await inventory.revoke_by_key(
                self.store, self.ingest, self.audit, payload, token, names, client, self.clock
            )
        except StoreError as exc:
            raise HTTPError(503, f"store: unavailable ({exc})", RETRY) from None

    async def _json_body(self, receive: Receive) -> Any:
        try:
            return strictjson.loads(await self._body(receive))
        except strictjson.DuplicateKey as exc:
            raise HTTPError(422, str(exc)) from None
        except strictjson.JsonTooDeep as exc:
            raise HTTPError(400, str(exc)) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"body: not JSON ({exc})") from None

    async def _authenticate(self, scope: Scope) -> TokenConfig:
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        client = scope.get("client") or ("?", 0)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            metrics.AUTH_FAILURES.labels("missing").inc()
            await self.audit.anomaly_limited(
                "auth_failure", client[0], reason="missing", source=client[0], path=scope["path"]
            )
            raise HTTPError(
                401,
                "authorization: a bearer token is required",
                [(b"www-authenticate", b'Bearer realm="revocd"')],
            )
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        found = None
        for candidate in self.tokens:  # compare with every token: no early exit to time
            if hmac.compare_digest(candidate.sha256, digest):
                found = candidate
        if found is None:
            metrics.AUTH_FAILURES.labels("unknown_token").inc()
            await self.audit.anomaly_limited(
                "auth_failure",
                client[0],
                reason="unknown_token",
                source=client[0],
                path=scope["path"],
                token_sha256_prefix=digest[:12],
            )
            raise HTTPError(
                401,
                "authorization: unknown token",
                [(b"www-authenticate", b'Bearer realm="revocd", error="invalid_token"')],
            )
        return found

    async def _body(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise HTTPError(413, f"body: larger than {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _events(
        self, scope: Scope, receive: Receive, token: TokenConfig
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        payload = await self._json_body(receive)
        if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
            raise HTTPError(400, "events: required, a list of event objects")
        allowed = None if "*" in token.issuers else set(token.issuers)
        # After a failed append, try once more; if the audit log is still unwritable,
        # nothing is applied.
        if not self.audit.healthy and not await self.audit.record("audit.resumed"):
            raise HTTPError(503, "audit: the audit log cannot be written; retry later")
        try:
            results = await self.ingest.submit(payload["events"], allowed)
        except BatchTooLarge as exc:
            raise HTTPError(413, str(exc)) from None
        counts = {c: 0 for c in ("applied", "unchanged", "rejected", "failed")}
        client = (scope.get("client") or ("?", 0))[0]
        entries: list[Entry] = []
        revoked: dict[str, int] = {}
        unknown_issuers: set[str] = set()
        blocked: list[tuple[str, EventResult]] = []
        for result, raw in zip(results, payload["events"], strict=True):
            counts[result.result] += 1
            if result.issuer is not None:
                metrics.EVENTS.labels(result.issuer, result.result).inc()
            fields: dict[str, Any] = {"token": token.name, "source": client}
            fields.update(_audit_event(raw))
            if result.serial is not None and not (isinstance(raw, dict) and "serial" in raw):
                fields["serial"] = format(result.serial, "x")
            if result.message:
                fields["message"] = result.message
            entries.append((f"event.{result.result}", fields))
            if (
                result.result == "applied"
                and isinstance(raw, dict)
                and raw.get("type") == "revoked"
            ):
                revoked[str(result.issuer)] = revoked.get(str(result.issuer), 0) + 1
            if result.blocked_key is not None:
                blocked.append((str(result.issuer), result))
            if result.message and result.message.startswith("issuer: unknown issuer"):
                unknown_issuers.add(str(raw.get("issuer")) if isinstance(raw, dict) else "?")
        # Applied events must be recorded even if the request is cancelled now (client
        # gone, shutdown): the write is a bounded local append.
        with trio.CancelScope(shield=True):
            written = await self.audit.record_many(entries)
        for name, result in blocked:
            metrics.BLOCKED_KEY_ISSUANCES.labels(name).inc()
            await self.audit.anomaly(
                "blocked_key",
                issuer=name,
                serial=format(result.serial or 0, "x"),
                spki_sha256=result.blocked_key,
                token=token.name,
                source=client,
            )
        for name in sorted(unknown_issuers):
            await self.audit.anomaly(
                "unknown_issuer", issuer=name[:200], token=token.name, source=client
            )
        for name, count in revoked.items():
            total = self.audit.revocations(name, count)
            if total is not None:
                await self.audit.anomaly(
                    "revocation_burst",
                    issuer=name,
                    revocations_last_minute=total,
                    threshold=self.audit.burst_threshold,
                    token=token.name,
                    source=client,
                )
        log.info("events from token %s at %s: %s", token.name, client, counts)
        if not written:
            # Applied and durable, but unaccounted for: the CA retries, the retry is
            # idempotent ("unchanged") and is recorded once the log is writable.
            raise HTTPError(503, "audit: the audit log cannot be written; retry later")
        status = 503 if counts["failed"] else 422 if counts["rejected"] else 200
        return (
            status,
            _json({"counts": counts, "results": [r.to_json() for r in results]}),
            b"application/json",
            [],
        )

    def _scoped(self, issuer: str, serial_text: str, token: TokenConfig) -> int:
        if issuer not in self.issuers:
            raise HTTPError(404, f"issuer: unknown issuer {issuer!r}")
        if "*" not in token.issuers and issuer not in token.issuers:
            raise HTTPError(403, f"issuer: this token may not read {issuer!r}")
        try:
            return parse_serial(serial_text)
        except EventError as exc:
            raise HTTPError(400, str(exc)) from None

    async def _read(self, read: Callable[[], Awaitable[T]], timeout: float = READ_TIMEOUT) -> T:
        """A store read for a control plane request: a 503 with Retry-After when the
        store fails or gives no answer within `timeout`."""
        with trio.move_on_after(timeout):
            try:
                return await read()
            except StoreError as exc:
                raise HTTPError(503, f"store: unavailable ({exc})", RETRY) from None
        raise HTTPError(503, f"store: no answer within {timeout:.0f} s", RETRY)

    async def _propagation(
        self, issuer: str, serial_text: str, token: TokenConfig
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        serial = self._scoped(issuer, serial_text, token)
        now_ms = int(self.clock() * 1000)
        found = await self._read(
            lambda: read_timeline(self.store, issuer, serial, self.propagation, now_ms)
        )
        if found is None:
            raise HTTPError(
                404,
                "serial: no propagation ledger (not revoked, revoked before the ledger "
                "existed, or past propagation.retention_days)",
            )
        return 200, _json(found.to_json()), b"application/json", []

    async def _certificate(
        self, issuer: str, serial_text: str, token: TokenConfig
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        serial = self._scoped(issuer, serial_text, token)
        record = await self._read(lambda: self.store.get_record(issuer, serial))
        if record is None:
            raise HTTPError(404, "serial: no record of this certificate")
        out: dict[str, Any] = {"issuer": issuer, **record.to_json()}
        facts = await self._read(lambda: self.store.inventory_facts(issuer, [serial]))
        if serial in facts:
            out["facts"] = facts[serial].to_json()
        return 200, _json(out), b"application/json", []

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        with trio.move_on_after(2):
            checks["store"] = "ok" if await self.store.ping() else "unreachable"
        checks.setdefault("store", "timeout")
        if self.data_plane is not None:
            serving, wanted = self.data_plane()
            checks["data_plane"] = (
                "ok" if serving >= wanted else f"{serving} of {wanted} workers serving"
            )
        for name, issuer in self.issuers.items():
            started = time.monotonic()
            try:
                with trio.fail_after(2):
                    await issuer.identity.signer.sign(b"revocd readiness probe")
                checks[f"signer:{name}"] = "ok"
            except Exception as exc:  # a broken signer makes the process unready
                checks[f"signer:{name}"] = f"failed: {type(exc).__name__}"
            if time.monotonic() - started > 1:
                checks[f"signer:{name}"] += " (slow)"
            # Fresh answers need a signing certificate that outlives their nextUpdate.
            _, next_update = issuer.schedule.window(int(self.clock()))
            if issuer.identity.not_after < next_update:
                checks[f"answers:{name}"] = "responder certificate ends before nextUpdate"
            else:
                checks[f"answers:{name}"] = "ok"
        return all(v == "ok" for v in checks.values()), checks


def _audit_event(raw: object) -> dict[str, Any]:
    """The pushed event as the CA sent it, so the record shows exactly what was asked;
    a certificate it carries is recorded by the SHA-256 of its DER (the inventory's
    `sha256`), so an issuance stays one readable record instead of a hash of kilobytes."""
    if isinstance(raw, dict) and isinstance(raw.get("certificate"), str):
        certificate = raw["certificate"]
        raw = {k: v for k, v in raw.items() if k != "certificate"}
        raw["certificate_sha256"] = der_digest(certificate)
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    if len(text) > AUDIT_EVENT_BYTES:
        return {
            "event_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "event_bytes": len(text),
        }
    return {"event": raw}


def der_digest(text: str) -> str:
    """SHA-256 of a PEM or base64 certificate's DER; of the text itself when it is
    neither (the event was then rejected, and the record says what was sent)."""
    body = text
    if "-----BEGIN" in text:
        body = "".join(line for line in text.splitlines() if line and not line.startswith("-----"))
    try:
        return hashlib.sha256(base64.b64decode(body, validate=False)).hexdigest()
    except ValueError:
        return hashlib.sha256(text.encode()).hexdigest()


def _only(method: str, allowed: str) -> None:
    if method != allowed:
        raise HTTPError(405, f"method: use {allowed}", [(b"allow", allowed.encode())])


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"
