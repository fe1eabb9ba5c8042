"""PKCS#11 signing (HSMs, SoftHSM2) with one owner thread and batched hand-off.

python-pkcs11 initialises the module with C_Initialize(NULL), which tells it no
application threads will call concurrently; two threads signing at once deadlock
or crash SoftHSM2. So exactly one thread owns the context and session. trio
tasks put jobs on a bounded queue; the owner drains up to `batch` jobs per
wake-up, signs them, and hands the results back through the trio token, so the
cross-thread cost is paid per batch. A full queue raises SignerBusy (tryLater);
a signature that takes longer than `timeout` raises SignerError, so a hung HSM
never hangs a request; token errors close the session and the owner reopens it
with backoff until the token answers again.
"""

import contextlib
import hashlib
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from asn1crypto import keys as asn1_keys

from .. import metrics
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


class _Job:
    __slots__ = ("cancelled", "data", "done", "error", "result", "token")

    def __init__(self, data: bytes, token: trio.lowlevel.TrioToken) -> None:
        self.data = data
        self.token = token
        self.done = trio.Event()
        self.result = b""
        self.error: BaseException | None = None
        self.cancelled = False


_STOP = object()
_owners_lock = threading.Lock()
_owners: dict[str, "Pkcs11Signer"] = {}


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
        self.rsa_padding = rsa_padding
        self.rsa_hash = rsa_hash
        self.batch = batch
        self.timeout = timeout
        self._queue: queue.Queue[Any] = queue.Queue(queue_size)
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.healthy = False
        self._alg = b""
        self._spki = b""
        self._sign_one: Any = None
        self.description = f"PKCS#11 {ref.module} key {ref.key_label or ref.key_id!r}"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, wait: float = 30.0) -> "Pkcs11Signer":
        """Start the owner thread and wait until the key is found (raises SignerError)."""
        with _owners_lock:
            owner = _owners.get(self.ref.module)
            if owner is not None and owner is not self and owner._thread is not None:
                raise SignerError(
                    f"{self.ref.module} is already owned by another signer in this process; "
                    "use one signer per module (or one process per HSM partition)"
                )
            _owners[self.ref.module] = self
        self._thread = threading.Thread(target=self._run, name="pkcs11-owner", daemon=True)
        self._thread.start()
        if not self._ready.wait(wait):
            raise SignerError("the PKCS#11 token did not open in time")
        if self._start_error is not None:
            self.close()
            raise SignerError(f"PKCS#11: {self._start_error}") from self._start_error
        return self

    def close(self) -> None:
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=1)
        self._thread.join(5)
        self._thread = None
        with _owners_lock:
            if _owners.get(self.ref.module) is self:
                del _owners[self.ref.module]

    # -- Signer protocol -----------------------------------------------------------------

    @property
    def signature_algorithm(self) -> bytes:
        return self._alg

    @property
    def public_key_info(self) -> bytes:
        return self._spki

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def sign(self, data: bytes) -> bytes:
        if not self.healthy:
            raise SignerError("PKCS#11 token unavailable")
        job = _Job(data, trio.lowlevel.current_trio_token())
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            metrics.SIGNER_QUEUE_FULL.inc()
            raise SignerBusy("PKCS#11 signing queue is full") from None
        metrics.SIGNER_QUEUE_DEPTH.set(self._queue.qsize())
        with trio.move_on_after(self.timeout):
            await job.done.wait()
        if not job.done.is_set():
            job.cancelled = True
            metrics.SIGNER_TIMEOUTS.inc()
            raise SignerError(f"PKCS#11 signature took longer than {self.timeout} s")
        if job.error is not None:
            raise SignerError(f"PKCS#11 signing failed: {job.error}") from job.error
        return job.result

    def sign_blocking(self, data: bytes, timeout: float = 10.0) -> bytes:
        """For callers outside trio (key ceremony tools, benchmarks)."""
        return trio.run(self._sign_with_timeout, data, timeout)

    async def _sign_with_timeout(self, data: bytes, timeout: float) -> bytes:
        with trio.fail_after(timeout):
            return await self.sign(data)

    # -- the owner thread ------------------------------------------------------------------

    def _run(self) -> None:
        import pkcs11

        session = None
        try:
            lib = pkcs11.lib(self.ref.module)
            session, key = self._open(lib)
        except Exception as exc:  # reported to start()
            self._start_error = exc
            self._ready.set()
            return
        self.healthy = True
        self._ready.set()
        backoff = 0.5
        while True:
            first = self._queue.get()
            if first is _STOP:
                break
            jobs = [first]
            while len(jobs) < self.batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._queue.put(_STOP)
                    break
                jobs.append(nxt)
            metrics.SIGNER_BATCH_SIZE.observe(len(jobs))
            failure: BaseException | None = None
            for job in jobs:
                if job.cancelled:
                    continue
                if failure is None:
                    try:
                        job.result = self._sign_one(key, job.data)
                    except pkcs11.exceptions.PKCS11Error as exc:
                        failure = exc
                if failure is not None:
                    job.error = failure
                _complete(job)
            metrics.SIGNER_QUEUE_DEPTH.set(self._queue.qsize())
            if failure is not None:
                self.healthy = False
                metrics.SIGN_ERRORS.labels("pkcs11", type(failure).__name__).inc()
                log.error("PKCS#11 error (%s); reopening the session", type(failure).__name__)
                session = self._reopen(lib, session, backoff)
                if session is None:
                    break
                session, key = session
        with contextlib.suppress(Exception):
            if session is not None:
                session.close()

    def _open(self, lib: Any) -> tuple[Any, Any]:
        from pkcs11 import Attribute, KeyType, ObjectClass

        token = lib.get_token(token_label=self.ref.token_label, token_serial=self.ref.token_serial)
        session = token.open(user_pin=self.ref.pin())
        match: dict[str, Any] = {"object_class": ObjectClass.PRIVATE_KEY}
        if self.ref.key_label is not None:
            match["label"] = self.ref.key_label
        if self.ref.key_id is not None:
            match["id"] = self.ref.key_id
        key = session.get_key(**match)
        pub_match = dict(match, object_class=ObjectClass.PUBLIC_KEY)
        public = session.get_key(**pub_match)
        if key.key_type == KeyType.EC:
            params = bytes(public[Attribute.EC_PARAMS])
            if params not in _CURVES:
                raise SignerError("unsupported EC curve on the token; use P-256, P-384 or P-521")
            hash_name, self._alg = _CURVES[params]
            from pkcs11.util.ec import encode_ec_public_key, encode_ecdsa_signature

            self._spki = bytes(encode_ec_public_key(public))
            self._sign_one = _ecdsa(hash_name, encode_ecdsa_signature)
        elif key.key_type == KeyType.RSA:
            from pkcs11.util.rsa import encode_rsa_public_key

            rsa_public = asn1_keys.RSAPublicKey.load(encode_rsa_public_key(public))
            self._spki = asn1_keys.PublicKeyInfo.wrap(rsa_public, "rsa").dump()
            self._alg, self._sign_one = _rsa(self.rsa_padding, self.rsa_hash)
        elif key.key_type == KeyType.EC_EDWARDS:
            point = bytes(public[Attribute.EC_POINT])
            raw = point[2:] if len(point) == 34 and point[0] == 0x04 else point
            self._spki = bytes.fromhex("302a300506032b6570032100") + raw
            self._alg = algorithms.ED25519
            from pkcs11 import Mechanism

            self._sign_one = lambda k, data: k.sign(data, mechanism=Mechanism.EDDSA)
        else:
            raise SignerError(f"unsupported key type {key.key_type!r}")
        log.info("PKCS#11 key ready: %s", self.description)
        return session, key

    def _reopen(self, lib: Any, session: Any, backoff: float) -> tuple[Any, Any] | None:
        with contextlib.suppress(Exception):
            session.close()
        while True:
            # Jobs that arrive meanwhile are failed fast (healthy is False) or time out.
            try:
                got = self._queue.get(timeout=backoff)
                if got is _STOP:
                    return None
                if isinstance(got, _Job):
                    got.error = SignerError("PKCS#11 token unavailable")
                    _complete(got)
                continue
            except queue.Empty:
                pass
            try:
                opened = self._open(lib)
            except Exception as exc:  # still gone: try again later
                log.warning("PKCS#11 token still unavailable: %s", exc)
                backoff = min(backoff * 2, 5.0)
                continue
            self.healthy = True
            log.info("PKCS#11 session reopened")
            return opened


def _complete(job: _Job) -> None:
    with contextlib.suppress(trio.RunFinishedError):
        job.token.run_sync_soon(job.done.set)


def _ecdsa(hash_name: str, to_der: Any) -> Any:
    from pkcs11 import Mechanism

    def sign(key: Any, data: bytes) -> bytes:
        # CKM_ECDSA signs a digest: hash here, then turn the raw r||s into DER.
        digest = hashlib.new(hash_name, data).digest()
        return bytes(to_der(key.sign(digest, mechanism=Mechanism.ECDSA)))

    return sign


def _rsa(padding: str, hash_name: str) -> tuple[bytes, Any]:
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
        return algorithms.rsa_pss(hash_name), lambda k, data: k.sign(
            data, mechanism=pss, mechanism_param=(digest, mgf, salt)
        )
    return alg, lambda k, data: k.sign(data, mechanism=pkcs1)
