"""The prober: what relying parties get through the public URLs (and so through the
CDN), checked against the standards and against the store.

Each round, per issuer with CRLs:

- every CRL shard at its URL: present, signed by the issuer, not past its nextUpdate,
  its IDP the URL it was fetched from (RFC 5280 5.2.5; CCADB's sharded CRLs), its CRL
  number not below the last one seen, no serial on two shards; the next shard index is
  absent; the issuer's CCADB JSON list names exactly the shard URLs;
- CRLs against the store: every serial listed is revoked in the store, and every
  revocation acknowledged well before a shard's thisUpdate is on it;

and per issuer, OCSP for every recent revocation (until seen `revoked`) and a random
sample of certificates: a successful, correctly signed answer, fresh and before its
nextUpdate, whose status is the store's. A recent revocation seen `revoked` records the
ledger's `probed` step; still `good` past `propagation.probed_target_seconds` is a
problem.

The checks are pure functions of bytes, certificates and the time (`check_crl_set`,
`check_ocsp`); `Prober` does the fetching and the store reads.
"""

import base64
import logging
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio
import urllib3
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import ExtensionOID

from ..config import Config
from ..domain.records import CertRecord, Status
from ..observability import metrics
from ..ocsp import HashAlgorithm, IssuerHashes
from ..store import Store
from ..store import keys as store_keys
from ..store.errors import StoreError
from .ledger import Ledger

log = logging.getLogger("revocd.probe")

# A revocation acknowledged this long before a CRL's thisUpdate must be on it (the
# generator's debounce and publication take seconds; a minute is generous).
CRL_GRACE = 60


@dataclass(frozen=True, slots=True)
class Problem:
    check: str
    issuer: str
    url: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "issuer": self.issuer, "url": self.url, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class CrlSeen:
    url: str
    number: int | None
    this_update: int
    next_update: int | None
    serials: frozenset[int]


@dataclass
class RoundReport:
    started: float
    problems: list[Problem] = field(default_factory=list)
    checks: dict[str, int] = field(default_factory=dict)
    probed: int = 0  # revocations seen revoked for the first time

    def ok(self, check: str, n: int = 1) -> None:
        self.checks[check] = self.checks.get(check, 0) + n
        metrics.PROBE_CHECKS.labels(check, "ok").inc(n)

    def bad(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.checks[problem.check] = self.checks.get(problem.check, 0) + 1
        metrics.PROBE_CHECKS.labels(problem.check, "problem").inc()
        log.warning(
            "probe: %s %s at %s: %s", problem.issuer, problem.check, problem.url, problem.detail
        )

    def to_json(self) -> dict[str, object]:
        return {
            "started": self.started,
            "problems": [p.to_json() for p in self.problems],
            "checks": self.checks,
            "revocations_seen_revoked": self.probed,
        }


def _verify(public_key: object, signature: bytes, data: bytes, hash_alg: object) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hash_alg)  # type: ignore[arg-type]
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hash_alg))  # type: ignore[arg-type]
        else:
            public_key.verify(signature, data)  # type: ignore[attr-defined]
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True


def parse_crl(
    issuer: str, cert: x509.Certificate, url: str, der: bytes, now: int, report: RoundReport
) -> CrlSeen | None:
    """One fetched CRL, checked on its own: parses, signed by the issuer, before its
    nextUpdate, IDP = the URL it came from (when it has one)."""
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError as exc:
        report.bad(Problem("crl_unparsable", issuer, url, str(exc)))
        return None
    if not crl.is_signature_valid(cert.public_key()):  # type: ignore[arg-type]
        report.bad(Problem("crl_signature", issuer, url, "not signed by the issuer's key"))
        return None
    report.ok("crl_signature")
    next_update = crl.next_update_utc
    nu = int(next_update.timestamp()) if next_update is not None else None
    if nu is None or nu <= now:
        report.bad(Problem("crl_expired", issuer, url, f"nextUpdate {next_update} has passed"))
    else:
        report.ok("crl_expired")
    try:
        idp = crl.extensions.get_extension_for_oid(ExtensionOID.ISSUING_DISTRIBUTION_POINT)
        names = [
            n.value
            for n in (idp.value.full_name or [])  # type: ignore[attr-defined]
            if isinstance(n, x509.UniformResourceIdentifier)
        ]
        if url not in names:
            report.bad(Problem("idp_mismatch", issuer, url, f"IDP names {names}, not the URL"))
        else:
            report.ok("idp_mismatch")
    except x509.ExtensionNotFound:
        pass  # a full (unsharded) CRL needs none
    try:
        number = int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        number = None
    return CrlSeen(
        url,
        number,
        int(crl.last_update_utc.timestamp()),
        nu,
        frozenset(r.serial_number for r in crl),
    )


def check_crl_set(
    issuer: str,
    urls: Sequence[str],
    seen: dict[str, CrlSeen | None],
    next_present: bool,
    previous: dict[str, int],
    report: RoundReport,
) -> dict[int, str]:
    """The shards as a set: every one present, no serial on two, the next index
    absent, numbers not going back. Returns serial -> the shard URL listing it."""
    listed: dict[int, str] = {}
    for url in urls:
        crl = seen.get(url)
        if crl is None:
            continue
        if crl.number is not None:
            before = previous.get(url)
            if before is not None and crl.number < before:
                report.bad(
                    Problem("crl_number_decreased", issuer, url, f"{crl.number} after {before}")
                )
            previous[url] = max(crl.number, before or 0)
        for serial in crl.serials:
            other = listed.get(serial)
            if other is not None:
                report.bad(
                    Problem(
                        "serial_on_two_shards", issuer, url, f"serial {serial:x} also on {other}"
                    )
                )
            else:
                listed[serial] = url
    if next_present:
        report.bad(
            Problem("extra_shard", issuer, "", f"a shard after the last ({len(urls)}) is served")
        )
    return listed


def check_ocsp(
    issuer: str,
    cert: x509.Certificate,
    url: str,
    der: bytes,
    serial: int,
    now: int,
    max_age: int,
    report: RoundReport,
) -> str | None:
    """One OCSP answer checked on its own; its status (good/revoked/unknown) or None."""
    try:
        resp = x509_ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        report.bad(Problem("ocsp_unparsable", issuer, url, str(exc)))
        return None
    if resp.response_status is not x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
        report.bad(Problem("ocsp_error", issuer, url, resp.response_status.name))
        return None
    signer = cert
    for candidate in resp.certificates:
        # a delegated responder, issued by the issuer (RFC 6960 4.2.2.2)
        try:
            candidate.verify_directly_issued_by(cert)
        except (ValueError, TypeError, InvalidSignature):
            report.bad(Problem("ocsp_signature", issuer, url, "responder not issued by issuer"))
            return None
        signer = candidate
    hash_alg = resp.signature_hash_algorithm or hashes.SHA256()
    if not _verify(signer.public_key(), resp.signature, resp.tbs_response_bytes, hash_alg):
        report.bad(Problem("ocsp_signature", issuer, url, "signature does not verify"))
        return None
    report.ok("ocsp_signature")
    if resp.serial_number != serial:
        report.bad(Problem("ocsp_wrong_serial", issuer, url, f"{resp.serial_number:x}"))
        return None
    this_update = int(resp.this_update_utc.timestamp())
    nu = resp.next_update_utc
    if nu is None or int(nu.timestamp()) <= now:
        report.bad(Problem("ocsp_expired", issuer, url, f"nextUpdate {nu} has passed"))
    elif now - this_update > max_age:
        report.bad(Problem("ocsp_stale", issuer, url, f"thisUpdate {now - this_update} s old"))
    else:
        report.ok("ocsp_fresh")
    return resp.certificate_status.name.lower()


Fetch = Callable[[str], tuple[int, bytes]]


def urllib3_fetch(connect_to: str = "", timeout: float = 10.0) -> Fetch:
    """GET a URL (blocking; run in a thread). `connect_to` (host:port) sends every
    request there with the URL's own Host, as `curl --connect-to` does: to probe one
    edge, or an origin whose public name does not resolve here."""
    pool = urllib3.PoolManager(retries=False)

    def fetch(url: str) -> tuple[int, bytes]:
        target = url
        headers = {}
        if connect_to:
            parts = urllib.parse.urlsplit(url)
            headers["Host"] = parts.netloc
            target = urllib.parse.urlunsplit(("http", connect_to, parts.path, parts.query, ""))
        reply = pool.request(
            "GET",
            target,
            headers=headers,
            timeout=urllib3.Timeout(total=timeout),
            redirect=False,
            preload_content=True,
        )
        return reply.status, reply.data

    return fetch


class Prober:
    def __init__(
        self,
        store: Store,
        config: Config,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.time,
        connect_to: str = "",
    ) -> None:
        self.store = store
        self.config = config
        self.probe = config.probe
        self.fetch = fetch or urllib3_fetch(connect_to, self.probe.timeout_seconds)
        self.clock = clock
        self.ledger = Ledger(store, config.propagation) if config.propagation.enabled else None
        self.numbers: dict[str, int] = {}  # CRL URL -> highest number seen
        self.hashes = {
            name: IssuerHashes.from_certificate(cert) for name, cert in config.certificates.items()
        }

    async def _get(self, url: str) -> tuple[int, bytes]:
        try:
            return await trio.to_thread.run_sync(self.fetch, url, abandon_on_cancel=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            log.debug("probe fetch %s: %s", url, exc)
            return 0, str(exc).encode()

    def ocsp_url(self) -> str:
        if self.probe.ocsp_url:
            return self.probe.ocsp_url
        host = self.config.server.host
        return f"http://{host}:{self.config.server.port}{self.config.server.ocsp_path}"

    async def round(self) -> RoundReport:
        report = RoundReport(self.clock())
        for name, issuer in self.config.issuers.items():
            cert = self.config.certificates.get(name)
            if cert is None:
                continue
            try:
                if issuer.crl is not None:
                    await self._crls(name, cert, report)
                await self._ocsp(name, cert, report)
            except StoreError as exc:
                report.bad(Problem("store", name, "", f"store unavailable: {exc}"))
        for check in {p.check for p in report.problems} | set(report.checks):
            metrics.PROBE_PROBLEMS.labels(check).set(
                sum(1 for p in report.problems if p.check == check)
            )
        metrics.PROBE_LAST_RUN.set(self.clock())
        return report

    async def _crls(self, name: str, cert: x509.Certificate, report: RoundReport) -> None:
        from crlgen.generator import shard_url

        issuer = self.config.issuers[name]
        assert issuer.crl is not None
        count = max(1, issuer.crl_shards)
        urls = [shard_url(issuer.crl.url, s) for s in range(count)]
        now = int(self.clock())
        seen: dict[str, CrlSeen | None] = {}
        for url in urls:
            status, body = await self._get(url)
            if status != 200:
                report.bad(Problem("shard_missing", name, url, f"HTTP {status or 'unreachable'}"))
                seen[url] = None
                continue
            report.ok("shard_present")
            seen[url] = parse_crl(name, cert, url, body, now, report)
        next_present = False
        if count > 1:
            status, _ = await self._get(shard_url(issuer.crl.url, count))
            next_present = status == 200
        listed = check_crl_set(name, urls, seen, next_present, self.numbers, report)
        await self._ccadb_list(name, urls, report)
        await self._crls_against_store(name, seen, listed, report)

    async def _ccadb_list(self, name: str, urls: list[str], report: RoundReport) -> None:
        import json

        if self.probe.crl_list_url:
            list_url = self.probe.crl_list_url.format(issuer=name)
        else:
            list_url = urls[0].rsplit("/", 1)[0] + f"/{name}.crls.json"
        status, body = await self._get(list_url)
        try:
            found = json.loads(body) if status == 200 else None
        except ValueError:
            found = None
        if found != urls:
            report.bad(
                Problem("ccadb_list", name, list_url, f"HTTP {status}: does not list the shards")
            )
        else:
            report.ok("ccadb_list")

    async def _crls_against_store(
        self,
        name: str,
        seen: dict[str, CrlSeen | None],
        listed: dict[int, str],
        report: RoundReport,
    ) -> None:
        records = await self.store.get_records(name, list(listed))
        for serial, url in listed.items():
            record = records.get(serial)
            crl = seen[url]
            assert crl is not None
            if record is None or (
                record.status is Status.GOOD and record.updated_at < crl.this_update
            ):
                report.bad(
                    Problem(
                        "crl_disagrees", name, url, f"serial {serial:x} is not revoked in the store"
                    )
                )
        if listed:
            report.ok("crl_agrees", len(listed))
        # revocations acknowledged well before a shard's thisUpdate must be on it
        now_ms = int(self.clock() * 1000)
        since = now_ms - self.probe.recent_seconds * 1000
        recent = await self._recent(name, since, now_ms)
        recent_records = await self.store.get_records(name, list(recent))
        for serial, ack_ms in recent.items():
            record = recent_records.get(serial)
            if record is None or record.status is not Status.REVOKED:
                continue
            shard_count = max(1, self.config.issuers[name].crl_shards)
            crl = list(seen.values())[record.crl_shard % shard_count] if seen else None
            late = crl is not None and ack_ms / 1000 + CRL_GRACE < crl.this_update
            if late and crl is not None and serial not in crl.serials:
                report.bad(
                    Problem(
                        "crl_missing_revocation",
                        name,
                        crl.url,
                        f"serial {serial:x} acknowledged revoked before thisUpdate",
                    )
                )

    async def _recent(self, name: str, since_ms: int, until_ms: int) -> dict[int, int]:
        out: dict[int, int] = {}
        for p in range(self.store.partitions(name)):
            for serial, ack in await self.store.ledger_range(name, p, since_ms, until_ms):
                out[serial] = ack
        return out

    async def _ocsp(self, name: str, cert: x509.Certificate, report: RoundReport) -> None:
        now = int(self.clock())
        now_ms = int(self.clock() * 1000)
        recent = await self._recent(name, now_ms - self.probe.recent_seconds * 1000, now_ms)
        pending = {}
        if recent:
            ledgers: dict[int, dict[str, str]] = {}
            n = self.store.partitions(name)
            by_p: dict[int, list[int]] = {}
            for serial in recent:
                by_p.setdefault(store_keys.partition_of(serial, n), []).append(serial)
            for p, serials in by_p.items():
                ledgers.update(await self.store.ledger_many(name, p, serials))
            pending = {s: a for s, a in recent.items() if "probed" not in ledgers.get(s, {})}
        sample = await self.store.random_serials(name, self.probe.sample)
        serials = sorted(set(pending) | set(sample))
        records = await self.store.get_records(name, serials)
        probed: dict[int, int] = {}
        for serial in serials:
            url = self._ocsp_get_url(name, serial)
            status, body = await self._get(url)
            if status != 200:
                report.bad(Problem("ocsp_unreachable", name, url, f"HTTP {status}"))
                continue
            answer = check_ocsp(
                name, cert, url, body, serial, now, self.probe.max_age_hours * 3600, report
            )
            if answer is None:
                continue
            record = records.get(serial)
            self._compare(name, url, serial, answer, record, pending.get(serial), now_ms, report)
            if answer == "revoked" and serial in pending:
                probed[serial] = int(self.clock() * 1000)
        if probed and self.ledger is not None:
            await self.ledger.mark(name, "probed", probed)
            report.probed += len(probed)

    def _compare(
        self,
        name: str,
        url: str,
        serial: int,
        answer: str,
        record: CertRecord | None,
        ack_ms: int | None,
        now_ms: int,
        report: RoundReport,
    ) -> None:
        """The answer against the store. A revocation still answered good is only a
        problem once its probed target has passed (until then it is propagating)."""
        want = "unknown" if record is None else record.status.value
        if answer == want:
            report.ok("ocsp_agrees")
            return
        target = self.config.propagation.probed_target_seconds * 1000
        if want == "revoked" and answer == "good":
            acked = ack_ms if ack_ms is not None else record.updated_at * 1000  # type: ignore[union-attr]
            if now_ms - acked <= target:
                return  # still within its target: propagating
        if want == "good" and record is not None and now_ms - record.updated_at * 1000 <= target:
            return  # a hold lifted moments ago
        report.bad(
            Problem(
                "ocsp_disagrees", name, url, f"serial {serial:x}: answered {answer}, store {want}"
            )
        )

    def _ocsp_get_url(self, name: str, serial: int) -> str:
        """A GET as RFC 5019 clients send it: one SHA-1 CertID, no nonce."""
        h = self.hashes[name]
        alg = HashAlgorithm.SHA1
        der = (
            x509_ocsp.OCSPRequestBuilder()
            .add_certificate_by_hash(h.name_hashes[alg], h.key_hashes[alg], serial, hashes.SHA1())
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        b64 = base64.b64encode(der).decode()
        return self.ocsp_url().rstrip("/") + "/" + urllib.parse.quote(b64, safe="")

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            report = await self.round()
            log.info(
                "probe round: %d problem(s), %d check(s), %d revocation(s) seen revoked",
                len(report.problems),
                sum(report.checks.values()),
                report.probed,
            )
            await trio.sleep(max(0.0, self.probe.interval_seconds - (time.monotonic() - started)))
