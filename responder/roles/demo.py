"""`revocd demo`: the whole responder on embedded defaults, with a demo PKI.

DIR (default ./revocd-demo) is created or reused. It holds root.pem,
issuer.pem, responder.pem (delegated OCSP signer) with keys,
certs/{good,revoked,unknown}.pem with keys (unknown.pem is signed by the
issuer but never reported as issued), control-token, and the revocd.toml
the demo runs with. The leaf certificates' AIA OCSP and CRL DP URLs point at
the demo's data plane. The demo starts the embedded Valkey, registers N
issued certificates with some revoked, pre-signs them, serves both planes,
prints the openssl commands to try and a line containing `ready`.
"""

import argparse
import contextlib
import hashlib
import logging
import random
import secrets
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import trio
from cryptography import x509

from ..config import load_config
from ..failures import describe, recoverable
from ..presign import presign_issuer
from ..testing import pki
from .serve import Running, run_service

log = logging.getLogger("revocd.demo")
POPULATE_RETRY = 30.0

SAMPLES = ("good", "revoked", "unknown")
ISSUER = "demo"


@dataclass(frozen=True)
class DemoPKI:
    directory: Path
    samples: dict[str, x509.Certificate]

    @classmethod
    def create_or_load(cls, directory: Path, base_url: str) -> "DemoPKI":
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "certs").mkdir(exist_ok=True)
        if not (directory / "issuer.pem").exists():
            _create(directory, base_url)
        samples = {
            name: x509.load_pem_x509_certificate((directory / f"certs/{name}.pem").read_bytes())
            for name in SAMPLES
        }
        return cls(directory, samples)


def _create(directory: Path, base_url: str) -> None:
    root = pki.make_root("revocd demo root")
    issuer = pki.make_intermediate("revocd demo issuing CA", root)
    responder = pki.make_responder(issuer)
    root.write(directory / "root.pem", directory / "root.key")
    issuer.write(directory / "issuer.pem", directory / "issuer.key")
    responder.write(directory / "responder.pem", directory / "responder.key")
    for name in SAMPLES:
        leaf = pki.make_leaf(
            issuer,
            x509.random_serial_number(),
            f"{name}.demo.revocd.test",
            ocsp_url=f"{base_url}/",
            crl_url=f"{base_url}/crl/{ISSUER}.crl",
            ca_issuers_url=f"{base_url}/aia/{ISSUER}.der",
        )
        leaf.write(directory / "certs" / f"{name}.pem", directory / "certs" / f"{name}.key")


SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
HSM_TOKEN = "revocd-demo"
HSM_KEY = "demo-responder"


def prepare_softhsm(directory: Path) -> str:
    """A SoftHSM2 token under DIR/softhsm holding the delegated responder key, and the
    responder certificate for it (DIR/responder-hsm.pem). Returns the hsm config table."""
    import os
    import shutil
    import subprocess

    from cryptography.hazmat.primitives import serialization

    from ..signing.pkcs11 import Pkcs11KeyRef, Pkcs11Signer, generate_key

    util = shutil.which("softhsm2-util")
    module = next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)
    if util is None or module is None:
        raise SystemExit("revocd demo --hsm needs SoftHSM2 (Debian package softhsm2)")
    hsm_dir = directory / "softhsm"
    conf = hsm_dir / "softhsm2.conf"
    pin_file = directory / "hsm-pin"
    # The module reads its configuration at C_Initialize, so it is set before any use.
    os.environ["SOFTHSM2_CONF"] = str(conf)
    if not conf.exists():
        (hsm_dir / "tokens").mkdir(parents=True)
        conf.write_text(
            f"directories.tokendir = {hsm_dir / 'tokens'}\nobjectstore.backend = file\n"
            "log.level = ERROR\n"
        )
        pin_file.touch(mode=0o600)
        pin_file.write_text(secrets.token_hex(8) + "\n")
        subprocess.run(
            [
                util,
                "--init-token",
                "--free",
                "--label",
                HSM_TOKEN,
                "--pin",
                pin_file.read_text().strip(),
                "--so-pin",
                secrets.token_hex(8),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    ref = Pkcs11KeyRef(module, key_label=HSM_KEY, token_label=HSM_TOKEN, pin_file=pin_file)
    cert_path = directory / "responder-hsm.pem"
    if not cert_path.exists():
        generate_key(ref, "ec-p256")
        signer = Pkcs11Signer(ref).start()
        try:
            public = serialization.load_der_public_key(signer.public_key_info)
        finally:
            signer.close()
        issuer = pki.Issued(
            x509.load_pem_x509_certificate((directory / "issuer.pem").read_bytes()),
            serialization.load_pem_private_key((directory / "issuer.key").read_bytes(), None),  # type: ignore[arg-type]
        )
        cert = pki.certify_responder_key(issuer, public, common_name="revocd demo HSM responder")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return (
        'responder_certificate = "responder-hsm.pem"\n\n'
        f"[issuers.{ISSUER}.hsm]\n"
        f'module = "{module}"\ntoken_label = "{HSM_TOKEN}"\nkey_label = "{HSM_KEY}"\n'
        'pin_file = "hsm-pin"\n'
    )


def write_config(
    directory: Path, host: str, port: int, control_port: int, hsm: str | None = None
) -> Path:
    token_file = directory / "control-token"
    if not token_file.exists():
        token_file.touch(mode=0o600)
        token_file.write_text(secrets.token_urlsafe(32) + "\n")
    digest = hashlib.sha256(token_file.read_text().strip().encode()).hexdigest()
    path = directory / "revocd.toml"
    signing = hsm or 'responder_certificate = "responder.pem"\nresponder_key = "responder.key"\n'
    crl = (
        f"\n[issuers.{ISSUER}.crl]\n"
        'key = "issuer.key"\n'
        f'url = "http://{host}:{port}/crl/{ISSUER}.crl"\n'
        "debounce_seconds = 1\n"
    )
    path.write_text(
        f"""# Written by `revocd demo`; docs/config.md documents every key.
state_dir = "state"

[server]
host = "{host}"
port = {port}
crl_dir = "crl"

[control]
host = "{host}"
port = {control_port}

[tokens.demo]
sha256 = "{digest}"
issuers = ["{ISSUER}"]

[issuers.{ISSUER}]
certificate = "issuer.pem"
policy = "tls"
partitions = 16
validity_hours = 96
aia_url = "http://{host}:{port}/aia/{ISSUER}.der"
aia_p7c_url = "http://{host}:{port}/aia/{ISSUER}.p7c"
aia_extra_certificates = ["root.pem"]
{signing}{crl}"""
    )
    return path


# The demo's certificates are made and registered whole (the inventory gets their facts)
# up to this many; beyond it, with facts given directly, since a signature check costs
# ~0.3 ms per event (docs/benchmarks.md) and the mass-revocation drill registers 100,000.
WHOLE_CERTIFICATES = 5000
OWNERS = ("payments", "search", "mail", "identity")
PROFILES = ("tls-server", "tls-client")
DEMO_KEYS = 16  # subject keys shared among the demo's certificates (a cascade finds them)


def demo_days(i: int) -> int:
    """Validity of the demo's i-th certificate: spread over 5 to 398 days, so the expiry
    figures have something in every threshold and no one day stands out."""
    return 5 + (i * 37) % 394


def demo_certificates(directory: Path, serials: list[int], base_url: str) -> list[str]:
    """Leaf certificates for `serials`, base64 DER, as the demo CA would issue them."""
    import base64

    from cryptography.hazmat.primitives import serialization

    issuer = pki.Issued(
        x509.load_pem_x509_certificate((directory / "issuer.pem").read_bytes()),
        serialization.load_pem_private_key(  # type: ignore[arg-type]
            (directory / "issuer.key").read_bytes(), None
        ),
    )
    keys = [pki.new_key() for _ in range(DEMO_KEYS)]
    out = []
    for i, serial in enumerate(serials):
        leaf = pki.make_leaf(
            issuer,
            serial,
            f"host{i}.demo.revocd.test",
            ocsp_url=f"{base_url}/",
            crl_url=f"{base_url}/crl/{ISSUER}.crl",
            ca_issuers_url=f"{base_url}/aia/{ISSUER}.der",
            key=keys[i % DEMO_KEYS],
            days=demo_days(i),
        )
        out.append(base64.b64encode(leaf.cert.public_bytes(serialization.Encoding.DER)).decode())
    return out


def _der64(cert: x509.Certificate) -> str:
    import base64

    from cryptography.hazmat.primitives import serialization

    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


async def populate(
    running: Running, demo: DemoPKI, certs: int, base_url: str = ""
) -> dict[str, int]:
    """Register the sample certificates and N-2 others, whole (with owners and profiles,
    up to WHOLE_CERTIFICATES); revoke the revoked sample and ~5%."""
    start = time.time()
    revoked_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    rng = random.Random(7)
    serials = [demo.samples["good"].serial_number, demo.samples["revoked"].serial_number]
    serials += [rng.getrandbits(127) | (1 << 120) for _ in range(max(0, certs - 2))]
    whole = min(len(serials) - 2, max(0, WHOLE_CERTIFICATES - 2))
    made = await trio.to_thread.run_sync(
        demo_certificates, demo.directory, serials[2 : 2 + whole], base_url
    )
    certificates = [
        _der64(demo.samples["good"]),
        _der64(demo.samples["revoked"]),
        *made,
    ]
    events: list[dict[str, str]] = []
    for i, s in enumerate(serials):
        labels = {"owner": OWNERS[i % len(OWNERS)], "profile": PROFILES[i % len(PROFILES)]}
        if i < len(certificates):
            events.append(
                {"type": "issued", "issuer": ISSUER, "certificate": certificates[i], **labels}
            )
        else:
            events.append(
                {
                    "type": "issued",
                    "issuer": ISSUER,
                    "serial": format(s, "x"),
                    "not_after": time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + demo_days(i) * 86400)
                    ),
                    **labels,
                }
            )
    revoke = [serials[1], *serials[2::20]]
    events += [
        {
            "type": "revoked",
            "issuer": ISSUER,
            "serial": format(s, "x"),
            "revoked_at": revoked_at,
            "reason": "keyCompromise" if s == serials[1] else "superseded",
        }
        for s in revoke
    ]
    counts = {"applied": 0, "unchanged": 0, "rejected": 0, "failed": 0}
    for start in range(0, len(events), 10_000):
        chunk = events[start : start + 10_000]
        # A store that dies meanwhile is restarted by itself; what failed is pushed
        # again (events are idempotent) for up to POPULATE_RETRY seconds.
        give_up = trio.current_time() + POPULATE_RETRY
        while True:
            results = await running.ingest.submit(chunk)
            failed = [chunk[r.index] for r in results if r.result == "failed"]
            for result in results:
                if result.result != "failed" or trio.current_time() >= give_up:
                    counts[result.result] += 1
            if not failed or trio.current_time() >= give_up:
                break
            log.warning("%d demo events not stored yet; pushing them again", len(failed))
            chunk = failed
            await trio.sleep(0.5)
    # For load generators (loadtests/locustfile.py): what was issued, what was revoked.
    revoked_set = set(revoke)
    (demo.directory / "serials.txt").write_text(
        "".join(f"{s:x} {'revoked' if s in revoked_set else 'good'}\n" for s in serials)
    )
    return counts


async def wait_for_crl(path: Path, serial: int, timeout: float = 30.0) -> None:
    """Until the generator has republished the CRL with the demo's revocations."""
    with trio.move_on_after(timeout):
        while True:
            try:
                crl = x509.load_der_x509_crl(path.read_bytes())
                if crl.get_revoked_certificate_by_serial_number(serial) is not None:
                    return
            except (OSError, ValueError):
                pass
            await trio.sleep(0.1)
    log.warning("the demo CRL does not list the revoked sample yet")


def run_demo(args: argparse.Namespace) -> int:
    directory = Path(args.dir).resolve()
    base_url = f"http://{args.host}:{args.port}"
    demo = DemoPKI.create_or_load(directory, base_url)
    hsm = prepare_softhsm(directory) if args.hsm else None
    config = load_config(write_config(directory, args.host, args.port, args.control_port, hsm))

    async def on_ready(running: Running) -> None:
        counts = await populate(running, demo, args.certs, base_url)
        # Seeded straight into the store, not through the control plane: say so once.
        await running.audit.record("demo.populated", issuer=ISSUER, counts=counts)
        if running.inventory is not None:
            # the expiry figures for what was just registered, not five minutes later
            await running.inventory.once()
        issuer = running.issuers[0]
        try:
            signed = await presign_issuer(running.store, issuer)
        except BaseException as exc:
            # The store failed during the start-up sweep (it is restarted by itself):
            # the pre-signer's own loop finishes the job; the demo stays up.
            if not recoverable(exc):
                raise
            log.warning(
                "start-up pre-sign incomplete (%s); the pre-signer will finish it", describe(exc)
            )
            signed = 0
        assert config.server.crl_dir is not None
        crl_path = config.server.crl_dir / f"{ISSUER}.crl"
        await wait_for_crl(crl_path, demo.samples["revoked"].serial_number)
        d = shlex.quote(str(directory))
        control = f"http://{args.host}:{running.control_port}"
        print(f"revocd demo in {directory}", flush=True)
        print(f"  {args.certs} certificates registered ({counts}), {signed} answers pre-signed")
        print("  try, for each of good, revoked, unknown:")
        for name in SAMPLES:
            print(
                f"    openssl ocsp -url {base_url}/ -issuer {d}/issuer.pem "
                f"-cert {d}/certs/{name}.pem -CAfile {d}/root.pem"
            )
        print("  by GET (RFC 6960 A.1):")
        print(
            f"    openssl ocsp -issuer {d}/issuer.pem -cert {d}/certs/good.pem -no_nonce "
            f"-reqout /tmp/req.der && curl -s {base_url}/$(base64 -w0 /tmp/req.der) "
            "-o /tmp/resp.der && openssl ocsp -respin /tmp/resp.der "
            f"-issuer {d}/issuer.pem -cert {d}/certs/good.pem -CAfile {d}/root.pem -no_nonce"
        )
        serial = format(demo.samples["good"].serial_number, "x")
        print("  revoke the good certificate through the control plane:")
        print(
            f'    curl -s -H "Authorization: Bearer $(cat {d}/control-token)" '
            f'{control}/v1/events -d \'{{"events": [{{"type": "revoked", "issuer": '
            f'"{ISSUER}", "serial": "{serial}", "revoked_at": "{_now()}", '
            f'"reason": "keyCompromise"}}]}}\''
        )
        print(f"  CRL published at {base_url}/crl/{ISSUER}.crl ({crl_path}); verify it with:")
        print(
            f"    curl -s {base_url}/crl/{ISSUER}.crl | openssl crl -inform DER -noout "
            f"-CAfile {d}/issuer.pem"
        )
        auth = f'-H "Authorization: Bearer $(cat {d}/control-token)"'
        print("  the inventory (certificates registered whole, with owners and profiles):")
        print(f"    curl -s {auth} '{control}/v1/inventory?owner=payments&limit=5'")
        print(f"    curl -s {auth} {control}/v1/inventory/expiry")
        print(f"    curl -s {auth} {control}/v1/campaigns")
        print(f"  metrics: curl -s {control}/metrics   readiness: curl -s {control}/readyz")
        print(f"  audit log: revocd audit verify {config.audit_file}")
        print(f"revocd demo ready: data plane {base_url}/, control plane {control}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the signal receiver
        trio.run(run_service, config, on_ready)
    print("revocd demo stopped")
    return 0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
