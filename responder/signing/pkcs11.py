"""PKCS#11 signing (HSMs, SoftHSM2) with one owner thread per module and batched hand-off.

python-pkcs11 initialises a module with C_Initialize(NULL), which tells it no
application threads will call concurrently; two threads signing at once deadlock
or crash SoftHSM2. So exactly one thread per module (per process) makes every
PKCS#11 call: it opens the sessions, finds the keys, and signs. trio tasks put
jobs on its bounded queue; the owner drains up to `batch` jobs per wake-up and
hands results back through each task's trio token, so the cross-thread cost is
paid per batch. Several keys (several issuers) in one module share its owner.

A full queue raises SignerBusy (tryLater). A signature slower than the signer's
timeout raises SignerError, so a hung HSM never hangs a request. Token errors
fail the batch, mark the module unhealthy (later requests fail fast) and the
owner reopens its sessions with backoff until the token answers again.
"""

import collections
import contextlib
import hashlib
import logging
import queue
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..observability import metrics
from . import algorithms
from .base import SignerBusy, SignerError
from .software import read_passphrase

log = logging.getLogger("revocd.hsm")

_CURVES = {  # EC_PARAMS (named curve OID DER) -> (hash, AlgorithmIdentifier)
    bytes.fromhex("06082a8648ce3d030107"): ("sha256", algorithms.ECDSA_SHA256),
    bytes.fromhex("06052b81040022"): ("sha384", algorithms.ECDSA_SHA384),
    bytes.fromhex("06052b81040023"): ("sha512", algorithms.ECDSA_SHA512),
}


@dataclass(frozen=True)
class Pkcs11KeyRef:
    """Where a key lives: module, token (label or serial), key (label or id), PIN source."""

    module: str
    key_label: str | None = None
    key_id: bytes | None = None
    token_label: str | None = None
    token_serial: str | None = None
    pin_file: Path | None = None
    pin_env: str | None = None

    def pin(self) -> str:
        raw = read_passphrase(self.pin_file, self.pin_env)
        if raw is None:
            raise SignerError("a PKCS#11 key needs pin_file or pin_env")
        return raw.decode()

    @property
    def token(self) -> tuple[str | None, str | None]:
        return (self.token_label, self.token_serial)


class _Job:
    """One signature. The waiting trio task is parked with wait_task_rescheduled and woken
    with reschedule: cheaper than an Event, which matters at tens of thousands a second."""

    __slots__ = ("cancelled", "data", "deadline", "done", "error", "key", "result", "task", "token")

    def __init__(
        self, key: "_LoadedKey", data: bytes, token: trio.lowlevel.TrioToken, deadline: float
    ) -> None:
        self.key = key
        self.data = data
        self.token = token
        self.deadline = deadline
        self.task = trio.lowlevel.current_task()
        self.done = False
        self.result = b""
        self.error: BaseException | None = None
        self.cancelled = False

    def wake(self) -> None:
        """In the trio thread: resume the waiting task, once."""
        if not self.done:
            self.done = True
            trio.lowlevel.reschedule(self.task)


class _Timeouts:
    """Per trio run: one system task expires waiting jobs, so a signature costs no cancel
    scope of its own (jobs are queued in deadline order, as they all share one timeout)."""

    def __init__(self) -> None:
        self.jobs: collections.deque[_Job] = collections.deque()

    async def run(self) -> None:
        while True:
            await trio.sleep(0.05)
            now = trio.current_time()
            jobs = self.jobs
            while jobs and (jobs[0].done or jobs[0].deadline <= now):
                job = jobs.popleft()
                if not job.done:
                    job.cancelled = True
                    job.error = _TIMEOUT
                    metrics.SIGNER_TIMEOUTS.inc()
                    job.wake()


_TIMEOUT = TimeoutError("PKCS#11 signature timed out")
_timeouts: "weakref.WeakKeyDictionary[trio.lowlevel.TrioToken, _Timeouts]" = (
    weakref.WeakKeyDictionary()
)


@dataclass
class _LoadedKey:
    """A key as the owner thread holds it; `handle` is only touched on that thread."""

    ref: Pkcs11KeyRef
    rsa_padding: str
    rsa_hash: str
    algorithm: bytes = b""
    spki: bytes = b""
    sign: Callable[[Any, bytes], bytes] | None = None
    handle: Any = None


@dataclass
class _Call:
    """Work other than signing that must run on the owner thread (opening keys)."""

    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


_STOP = object()
_owners_lock = threading.Lock()
_owners: dict[str, "_ModuleOwner"] = {}


class _ModuleOwner:
    """The one thread that calls into one PKCS#11 module."""

    def __init__(self, module: str, queue_size: int, batch: int) -> None:
        self.module = module
        self.batch = batch
        self.queue: queue.Queue[Any] = queue.Queue(queue_size)
        metrics.SIGNER_QUEUE_CAPACITY.set(queue_size)
        self.healthy = True
        self.users = 0
        self._lib: Any = None
        self._sessions: dict[tuple[str | None, str | None], Any] = {}
        self._keys: list[_LoadedKey] = []
        self._thread = threading.Thread(target=self._run, name=f"pkcs11:{module}", daemon=True)
        self._thread.start()

    @classmethod
    def get(cls, module: str, queue_size: int, batch: int) -> "_ModuleOwner":
        with _owners_lock:
            owner = _owners.get(module)
            if owner is None:
                owner = _owners[module] = cls(module, queue_size, batch)
            owner.users += 1
            return owner

    def release(self) -> None:
        with _owners_lock:
            self.users -= 1
            if self.users > 0:
                return
            del _owners[self.module]
        self.queue.put(_STOP)
        self._thread.join(5)

    def call(self, fn: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Run fn on the owner thread and wait for it (start-up, not the hot path)."""
        work = _Call(fn)
        self.queue.put(work, timeout=timeout)
        if not work.done.wait(timeout):
            raise SignerError("the PKCS#11 module did not answer in time")
        if work.error is not None:
            raise work.error
        return work.result

    # -- on the owner thread ---------------------------------------------------------------

    def load(self, key: _LoadedKey) -> _LoadedKey:
        self._open_key(key)
        self._keys.append(key)
        return key

    def generate(self, ref: Pkcs11KeyRef, kind: str) -> None:
        """Generate a key pair in the token, private key non-extractable and sensitive."""
        import pkcs11
        from pkcs11 import Attribute, KeyType
        from pkcs11.util.ec import encode_named_curve_parameters

        if self._lib is None:
            self._lib = pkcs11.lib(self.module)
        token = self._lib.get_token(token_label=ref.token_label, token_serial=ref.token_serial)
        label = ref.key_label
        key_id = ref.key_id or (label.encode() if label else None)
        private = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}
        with token.open(rw=True, user_pin=ref.pin()) as session:
            if kind in ("ec-p256", "ec-p384"):
                curve = "secp256r1" if kind == "ec-p256" else "secp384r1"
                params = session.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)},
                    local=True,
                )
                params.generate_keypair(
                    store=True, label=label, id=key_id, private_template=private
                )
            elif kind.startswith("rsa-"):
                session.generate_keypair(
                    KeyType.RSA,
                    int(kind[4:]),
                    store=True,
                    label=label,
                    id=key_id,
                    private_template=private,
                )
            else:
                raise SignerError(f"unsupported key type {kind!r} for an HSM key")

    def _session(self, ref: Pkcs11KeyRef) -> Any:
        import pkcs11

        if self._lib is None:
            self._lib = pkcs11.lib(self.module)
        session = self._sessions.get(ref.token)
        if session is None:
            token = self._lib.get_token(token_label=ref.token_label, token_serial=ref.token_serial)
            session = self._sessions[ref.token] = token.open(user_pin=ref.pin())
        return session

    def _open_key(self, key: _LoadedKey) -> None:
        from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

        session = self._session(key.ref)
        match: dict[str, Any] = {"object_class": ObjectClass.PRIVATE_KEY}
        if key.ref.key_label is not None:
            match["label"] = key.ref.key_label
        if key.ref.key_id is not None:
            match["id"] = key.ref.key_id
        key.handle = session.get_key(**match)
        public = session.get_key(**dict(match, object_class=ObjectClass.PUBLIC_KEY))
        if key.handle.key_type == KeyType.EC:
            params = bytes(public[Attribute.EC_PARAMS])
            if params not in _CURVES:
                raise SignerError("unsupported EC curve on the token; use P-256, P-384 or P-521")
            hash_name, key.algorithm = _CURVES[params]
            from pkcs11.util.ec import encode_ec_public_key

            key.spki = bytes(encode_ec_public_key(public))
            key.sign = _ecdsa(hash_name, _ecdsa_der)
        elif key.handle.key_type == KeyType.RSA:
            from pkcs11.util.rsa import encode_rsa_public_key

            rsa_public = asn1_keys.RSAPublicKey.load(encode_rsa_public_key(public))
            key.spki = asn1_keys.PublicKeyInfo.wrap(rsa_public, "rsa").dump()
            key.algorithm, key.sign = _rsa(key.rsa_padding, key.rsa_hash)
        elif key.handle.key_type == KeyType.EC_EDWARDS:
            point = bytes(public[Attribute.EC_POINT])
            raw = point[2:] if len(point) == 34 and point[0] == 0x04 else point
            key.spki = bytes.fromhex("302a300506032b6570032100") + raw
            key.algorithm = algorithms.ED25519
            key.sign = lambda k, data: k.sign(data, mechanism=Mechanism.EDDSA)
        else:
            raise SignerError(f"unsupported key type {key.handle.key_type!r}")

    def _run(self) -> None:
        import pkcs11

        backoff = 0.5
        while True:
            first = self.queue.get()
            if first is _STOP:
                break
            if isinstance(first, _Call):
                self._do_call(first)
                continue
            jobs = [first]
            while len(jobs) < self.batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP or isinstance(nxt, _Call):
                    self.queue.put(nxt)  # handled after this batch
                    break
                jobs.append(nxt)
            metrics.SIGNER_BATCH_SIZE.observe(len(jobs))
            failure: BaseException | None = None
            for job in jobs:
                if job.cancelled:
                    continue
                if failure is None:
                    try:
                        assert job.key.sign is not None
                        job.result = job.key.sign(job.key.handle, job.data)
                    except pkcs11.exceptions.PKCS11Error as exc:
                        failure = exc
                if failure is not None:
                    job.error = failure
            _complete_all(jobs)
            metrics.SIGNER_QUEUE_DEPTH.set(self.queue.qsize())
            if failure is not None:
                self.healthy = False
                metrics.SIGN_ERRORS.labels("pkcs11", type(failure).__name__).inc()
                log.error("PKCS#11 error (%s); reopening sessions", type(failure).__name__)
                if not self._reopen(backoff):
                    break
        for session in self._sessions.values():
            with contextlib.suppress(Exception):
                session.close()

    def _do_call(self, work: _Call) -> None:
        try:
            work.result = work.fn()
        except BaseException as exc:  # handed to the waiting caller
            work.error = exc
        work.done.set()

    def _reopen(self, backoff: float) -> bool:
        for session in self._sessions.values():
            with contextlib.suppress(Exception):
                session.close()
        self._sessions.clear()
        while True:
            try:
                got = self.queue.get(timeout=backoff)
            except queue.Empty:
                got = None
            if got is _STOP:
                return False
            if isinstance(got, _Job):  # normally failed fast by sign(); these raced it
                got.error = SignerError("PKCS#11 token unavailable")
                _complete(got)
                continue
            if isinstance(got, _Call):
                self._do_call(got)
                continue
            try:
                for key in self._keys:
                    self._open_key(key)
            except Exception as exc:  # still gone: try again later
                self._sessions.clear()
                log.warning("PKCS#11 token still unavailable: %s", exc)
                backoff = min(backoff * 2, 5.0)
                continue
            self.healthy = True
            log.info("PKCS#11 sessions reopened")
            return True


class Pkcs11Signer:
    """A Signer whose private key never leaves the token."""

    def __init__(
        self,
        ref: Pkcs11KeyRef,
        *,
        rsa_padding: str = "pkcs1v15",
        rsa_hash: str = "sha256",
        queue_size: int = 10_000,
        batch: int = 256,
        timeout: float = 2.0,
    ) -> None:
        self.ref = ref
        self.timeout = timeout
        self._queue_size = queue_size
        self._batch = batch
        self._key = _LoadedKey(ref, rsa_padding, rsa_hash)
        self._owner: _ModuleOwner | None = None
        self.description = f"PKCS#11 {ref.module} key {ref.key_label or ref.key_id!r}"

    def start(self) -> "Pkcs11Signer":
        """Find the key on the token (raises SignerError naming the problem)."""
        owner = _ModuleOwner.get(self.ref.module, self._queue_size, self._batch)
        try:
            owner.call(lambda: owner.load(self._key))
        except SignerError:
            owner.release()
            raise
        except Exception as exc:
            owner.release()
            raise SignerError(f"PKCS#11: {type(exc).__name__}: {exc}") from exc
        self._owner = owner
        log.info("PKCS#11 key ready: %s", self.description)
        return self

    def close(self) -> None:
        if self._owner is not None:
            self._owner.release()
            self._owner = None

    @property
    def signature_algorithm(self) -> bytes:
        return self._key.algorithm

    @property
    def public_key_info(self) -> bytes:
        return self._key.spki

    @property
    def healthy(self) -> bool:
        return self._owner is not None and self._owner.healthy

    async def sign(self, data: bytes) -> bytes:
        owner = self._owner
        if owner is None or not owner.healthy:
            raise SignerError("PKCS#11 token unavailable")
        token = trio.lowlevel.current_trio_token()
        timeouts = _timeouts.get(token)
        if timeouts is None:
            timeouts = _timeouts[token] = _Timeouts()
            trio.lowlevel.spawn_system_task(timeouts.run)
        job = _Job(self._key, data, token, trio.current_time() + self.timeout)
        try:
            owner.queue.put_nowait(job)
        except queue.Full:
            metrics.SIGNER_QUEUE_FULL.inc()
            raise SignerBusy("PKCS#11 signing queue is full") from None
        timeouts.jobs.append(job)

        def abort(_: object) -> trio.lowlevel.Abort:
            job.cancelled = True  # the owner skips it; a late result is dropped
            job.done = True
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        if job.error is _TIMEOUT:
            raise SignerError(f"PKCS#11 signature took longer than {self.timeout} s")
        if job.error is not None:
            raise SignerError(f"PKCS#11 signing failed: {job.error!r}") from job.error
        return job.result


def generate_key(ref: Pkcs11KeyRef, kind: str = "ec-p256") -> None:
    """Generate a key pair in the token `ref` names (on the module's owner thread)."""
    owner = _ModuleOwner.get(ref.module, 16, 1)
    try:
        owner.call(lambda: owner.generate(ref, kind))
    finally:
        owner.release()


def _complete(job: _Job) -> None:
    with contextlib.suppress(trio.RunFinishedError):
        job.token.run_sync_soon(job.wake)


def _complete_all(jobs: list[_Job]) -> None:
    """Wake a batch's waiters with one call into each trio loop, not one per job."""
    by_loop: dict[trio.lowlevel.TrioToken, list[_Job]] = {}
    for job in jobs:
        if not job.cancelled:
            by_loop.setdefault(job.token, []).append(job)
    for token, group in by_loop.items():
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(_wake, group)


def _wake(jobs: list[_Job]) -> None:
    for job in jobs:
        job.wake()  # a timed-out or cancelled job was already woken, and stays so


def _ecdsa_der(raw: bytes) -> bytes:
    """PKCS#11's r||s (each half the length) as the DER ECDSA-Sig-Value X.509 wants.

    cryptography's encoder, not python-pkcs11's (asn1crypto): 1.5 µs against 17 µs, and
    this runs on the owner thread holding the GIL, once per signature."""
    half = len(raw) // 2
    r = int.from_bytes(raw[:half], "big")
    s = int.from_bytes(raw[half:], "big")
    return encode_dss_signature(r, s)


def _ecdsa(hash_name: str, to_der: Any) -> Callable[[Any, bytes], bytes]:
    from pkcs11 import Mechanism

    def sign(key: Any, data: bytes) -> bytes:
        # CKM_ECDSA signs a digest: hash here, then turn the raw r||s into DER.
        digest = hashlib.new(hash_name, data).digest()
        return bytes(to_der(key.sign(digest, mechanism=Mechanism.ECDSA)))

    return sign


def _rsa(padding: str, hash_name: str) -> tuple[bytes, Callable[[Any, bytes], bytes]]:
    from pkcs11 import MGF, Mechanism

    mechs = {
        "sha256": (
            Mechanism.SHA256_RSA_PKCS,
            Mechanism.SHA256_RSA_PKCS_PSS,
            Mechanism.SHA256,
            MGF.SHA256,
            32,
            algorithms.RSA_SHA256,
        ),
        "sha384": (
            Mechanism.SHA384_RSA_PKCS,
            Mechanism.SHA384_RSA_PKCS_PSS,
            Mechanism.SHA384,
            MGF.SHA384,
            48,
            algorithms.RSA_SHA384,
        ),
        "sha512": (
            Mechanism.SHA512_RSA_PKCS,
            Mechanism.SHA512_RSA_PKCS_PSS,
            Mechanism.SHA512,
            MGF.SHA512,
            64,
            algorithms.RSA_SHA512,
        ),
    }
    if hash_name not in mechs:
        raise SignerError(f"unsupported RSA hash {hash_name!r}")
    pkcs1, pss, digest, mgf, salt, alg = mechs[hash_name]
    if padding == "pss":

        def sign_pss(k: Any, data: bytes) -> bytes:
            return bytes(k.sign(data, mechanism=pss, mechanism_param=(digest, mgf, salt)))

        return algorithms.rsa_pss(hash_name), sign_pss

    def sign_pkcs1(k: Any, data: bytes) -> bytes:
        return bytes(k.sign(data, mechanism=pkcs1))

    return alg, sign_pkcs1
