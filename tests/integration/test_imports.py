"""`revocd import`: OpenSSL index.txt, CRLs and certificate directories from a real `openssl ca`."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from responder.config import load_config
from responder.ocsp.types import RevocationReason
from responder.roles.wiring import configured_store
from responder.store import Status

from .. import pki_files
from ..conftest import openssl

CA_CNF = """
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
certificate = ./issuer.pem
private_key = ./issuer.key
serial = ./serial
crlnumber = ./crlnumber
default_md = sha256
default_days = 90
default_crl_days = 7
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = supplied
"""


@pytest.fixture(scope="module")
def openssl_ca(test_pki, tmp_path_factory):
    """An OpenSSL CA run on the test issuer: 5 certificates, 4 revoked in OpenSSL's ways."""
    d = tmp_path_factory.mktemp("openssl-ca")
    (d / "issuer.pem").write_bytes(test_pki.path("issuer.pem").read_bytes())
    (d / "issuer.key").write_bytes(test_pki.path("issuer.key").read_bytes())
    (d / "ca.cnf").write_text(CA_CNF)
    (d / "newcerts").mkdir()
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "crlnumber").write_text("01\n")
    (d / "certs").mkdir()
    for i in range(1, 6):
        openssl(
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            d / f"k{i}.key",
            "-subj",
            f"/CN=leaf{i}.test",
            "-out",
            d / f"r{i}.csr",
        )
        ca(d, "-batch", "-in", f"r{i}.csr", "-out", f"certs/c{i}.pem")
    ca(d, "-revoke", "certs/c1.pem", "-crl_reason", "keyCompromise")
    ca(d, "-revoke", "certs/c2.pem", "-crl_compromise", "20261101120000Z")
    ca(d, "-revoke", "certs/c3.pem", "-crl_hold", "holdInstructionCallIssuer")
    ca(d, "-revoke", "certs/c4.pem")
    ca(d, "-gencrl", "-out", "crl.pem")
    openssl("crl", "-in", d / "crl.pem", "-outform", "DER", "-out", d / "crl.der")
    return d


def ca(d: Path, *args: str) -> None:
    result = subprocess.run(
        ["openssl", "ca", "-config", "ca.cnf", *args],
        cwd=d,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def config_for(tmp_path: Path, ca_dir: Path, policy: str) -> Path:
    cfg = tmp_path / "revocd.toml"
    cfg.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[issuers.ca]\ncertificate = "{ca_dir / "issuer.pem"}"\npolicy = "{policy}"\n'
        "partitions = 8\n"
    )
    return cfg


def revocd_import(cfg: Path, kind: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "responder",
            "import",
            "-c",
            str(cfg),
            "--issuer",
            "ca",
            kind,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def records(cfg: Path, serials: list[int]):
    config = load_config(cfg)

    async def main():
        async with configured_store(config) as store:
            return await store.get_records("ca", serials)

    return trio.run(main)


SERIALS = [0x1000, 0x1001, 0x1002, 0x1003, 0x1004]


def test_index_txt_import_and_replay(openssl_ca, tmp_path):
    cfg = config_for(tmp_path, openssl_ca, "smime")
    first = revocd_import(cfg, "index", openssl_ca / "index.txt")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "applied 9" in first.stdout  # 5 issued + 4 revoked
    again = revocd_import(cfg, "index", openssl_ca / "index.txt")
    assert again.returncode == 0
    assert "unchanged 9" in again.stdout and "applied" not in again.stdout

    got = records(cfg, SERIALS)
    assert got[0x1000].reason is RevocationReason.KEY_COMPROMISE
    assert got[0x1001].reason is RevocationReason.KEY_COMPROMISE
    assert got[0x1001].invalidity_date == 1793534400  # keyTime 2026-11-01T12:00:00Z
    assert got[0x1002].reason is RevocationReason.CERTIFICATE_HOLD
    assert got[0x1003].status is Status.REVOKED
    assert got[0x1003].reason is RevocationReason.UNSPECIFIED
    assert got[0x1004].status is Status.GOOD
    assert all(r.not_after is not None for r in got.values())
    # Each import is in the audit log, naming the file by digest, with its counts.
    audit = [json.loads(x) for x in (tmp_path / "state" / "audit.log").read_text().splitlines()]
    assert [r["kind"] for r in audit] == ["import.completed", "import.completed"]
    digest = hashlib.sha256((openssl_ca / "index.txt").read_bytes()).hexdigest()
    assert audit[0]["sha256"] == digest and audit[0]["what"] == "index"
    assert audit[0]["counts"] == {"applied": 9} and audit[1]["counts"] == {"unchanged": 9}


def test_hold_in_index_is_rejected_for_tls_issuer(openssl_ca, tmp_path):
    cfg = config_for(tmp_path, openssl_ca, "tls")
    out = revocd_import(cfg, "index", openssl_ca / "index.txt")
    assert out.returncode == 1
    assert "index.txt:3: reason: certificateHold is not allowed for tls issuers" in out.stdout
    assert "applied 8" in out.stdout and "rejected 1" in out.stdout


def test_crl_import_der_and_pem(openssl_ca, tmp_path):
    cfg = config_for(tmp_path, openssl_ca, "smime")
    der = revocd_import(cfg, "crl", openssl_ca / "crl.der")
    assert der.returncode == 0, der.stdout + der.stderr
    assert "applied 4" in der.stdout
    pem = revocd_import(cfg, "crl", openssl_ca / "crl.pem")
    assert "unchanged 4" in pem.stdout
    got = records(cfg, SERIALS)
    assert got[0x1001].invalidity_date == 1793534400
    assert got[0x1002].reason is RevocationReason.CERTIFICATE_HOLD
    assert got[0x1000].not_after is None  # a CRL does not say when the certificate expires
    assert 0x1004 not in got


def test_crl_from_another_issuer_is_refused(openssl_ca, tmp_path, test_pki):
    other = pki_files.other_issuer_dir(tmp_path / "other", test_pki)
    cfg = config_for(tmp_path, other, "smime")
    out = revocd_import(cfg, "crl", openssl_ca / "crl.der")
    assert out.returncode == 1
    assert "is not ca" in out.stderr


def test_certificate_directory_import(openssl_ca, tmp_path, test_pki):
    cfg = config_for(tmp_path, openssl_ca, "smime")
    certs = tmp_path / "certs"
    certs.mkdir()
    for p in (openssl_ca / "certs").iterdir():
        (certs / p.name).write_bytes(p.read_bytes())
    (certs / "foreign.pem").write_bytes(test_pki.root.cert_pem)  # another issuer: skipped
    (certs / "junk.crt").write_bytes(b"not a certificate")
    out = revocd_import(cfg, "certs", certs)
    assert "applied 5" in out.stdout
    assert "skipped (other issuer) 1" in out.stdout
    assert "junk.crt: not a certificate file" in out.stdout
    got = records(cfg, SERIALS)
    assert {s for s, r in got.items() if r.status is Status.GOOD} == set(SERIALS)
