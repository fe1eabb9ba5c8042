"""CRLs from pre-encoded shards: openssl accepts them, shards carry the certificates' DP URI
byte for byte, and revoked certificates fail `openssl verify -crl_check` (RFC 5280 section 5)."""

import random
import time

import pytest
import trio
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from crlgen.builder import CrlIssuer, Shard, build_crl
from responder.ocsp.types import RevocationReason
from responder.signing import SoftwareSigner
from responder.store import CertRecord, Status
from responder.testing import pki

from ..conftest import openssl

NOW = int(time.time())
REASONS = [
    None,
    RevocationReason.UNSPECIFIED,
    RevocationReason.KEY_COMPROMISE,
    RevocationReason.SUPERSEDED,
    RevocationReason.CESSATION_OF_OPERATION,
]


def revoked_record(serial, reason=RevocationReason.KEY_COMPROMISE, invalidity=None, shard=0):
    return CertRecord(
        serial,
        Status.REVOKED,
        NOW + 86400 * 30,
        2,
        NOW,
        shard,
        revoked_at=NOW - 3600,
        reason=reason,
        invalidity_date=invalidity,
    )


def write_pem(path, der):
    path.write_bytes(x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def crl_issuer(test_pki):
    return CrlIssuer(test_pki.issuer.cert, SoftwareSigner(test_pki.issuer.key))


def test_full_crl_verifies_and_revokes(test_pki, crl_issuer, tmp_path):
    rng = random.Random(1)
    records = [
        revoked_record(
            rng.getrandbits(120) | 1, rng.choice(REASONS), NOW - 7200 if i % 7 == 0 else None
        )
        for i in range(2000)
    ]
    records.append(revoked_record(test_pki.leaves["revoked"].cert.serial_number))
    der = trio.run(build_crl, crl_issuer, Shard.from_records(records), 42, NOW, NOW + 7 * 86400)
    pem = write_pem(tmp_path / "full.crl", der)
    out = openssl("crl", "-in", pem, "-noout", "-CAfile", test_pki.path("issuer.pem"))
    assert "verify OK" in out.stdout + out.stderr

    crl = x509.load_der_x509_crl(der)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    assert crl.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    assert len(crl) == len(records)
    by_serial = {r.serial: r for r in records}
    for entry in crl:
        record = by_serial[entry.serial_number]
        exts = {e.oid: e.value for e in entry.extensions}
        reason = exts.get(x509.oid.CRLEntryExtensionOID.CRL_REASON)
        if record.reason in (None, RevocationReason.UNSPECIFIED):
            assert reason is None  # RFC 5280 section 5.3.1: unspecified is left out
        else:
            assert reason.reason.name == record.reason.name.lower()
        invalidity = exts.get(x509.oid.CRLEntryExtensionOID.INVALIDITY_DATE)
        assert (invalidity is not None) == (record.invalidity_date is not None)
    parsed = asn1_crl.CertificateList.load(der)
    assert parsed["tbs_cert_list"]["version"].native == "v2"
    assert parsed.dump(force=True) == der  # our bytes are DER

    chain = [
        "-CAfile",
        test_pki.path("root.pem"),
        "-untrusted",
        test_pki.path("issuer.pem"),
        "-crl_check",
        "-CRLfile",
        pem,
    ]
    bad = openssl("verify", *chain, test_pki.path("revoked.pem"), check=False)
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr
    assert openssl("verify", *chain, test_pki.path("good.pem")).stdout.strip().endswith("OK")


def test_empty_crl_leaves_out_revoked_certificates(test_pki, crl_issuer, tmp_path):
    der = trio.run(build_crl, crl_issuer, Shard(), 1, NOW, NOW + 86400)
    tbs = asn1_crl.CertificateList.load(der)["tbs_cert_list"]
    assert not tbs["revoked_certificates"].contents  # absent, not an empty SEQUENCE
    out = openssl(
        "crl",
        "-in",
        write_pem(tmp_path / "e.crl", der),
        "-noout",
        "-CAfile",
        test_pki.path("issuer.pem"),
    )
    assert "verify OK" in out.stdout + out.stderr


def test_sharded_crls_match_the_certificates_dp(test_pki, crl_issuer, tmp_path):
    template = "http://crl.revocd.test/alpha/{shard}.crl"
    shards = 4
    leaves = []
    for i in range(8):
        serial = 0x7000 + i
        leaf = pki.make_leaf(
            test_pki.issuer, serial, f"s{i}.test", crl_url=template.format(shard=serial % shards)
        )
        leaves.append(leaf)
        leaf.write(tmp_path / f"leaf{i}.pem")
    revoked = {leaf.cert.serial_number for leaf in leaves[::2]}
    by_shard: dict[int, list[CertRecord]] = {n: [] for n in range(shards)}
    for serial in revoked:
        by_shard[serial % shards].append(revoked_record(serial, shard=serial % shards))
    for n in range(shards):
        der = trio.run(
            build_crl,
            crl_issuer,
            Shard.from_records(by_shard[n]),
            7,
            NOW,
            NOW + 86400,
            template.format(shard=n),
        )
        write_pem(tmp_path / f"shard{n}.crl", der)
    for i, leaf in enumerate(leaves):
        n = leaf.cert.serial_number % shards
        dp = leaf.cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        crl = x509.load_pem_x509_crl((tmp_path / f"shard{n}.crl").read_bytes())
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert idp.critical
        assert idp.value.full_name[0].value.encode() == dp[0].full_name[0].value.encode()
        chain = [
            "-CAfile",
            test_pki.path("root.pem"),
            "-untrusted",
            test_pki.path("issuer.pem"),
            "-crl_check",
            "-CRLfile",
            tmp_path / f"shard{n}.crl",
        ]
        out = openssl("verify", *chain, tmp_path / f"leaf{i}.pem", check=False)
        if leaf.cert.serial_number in revoked:
            assert "certificate revoked" in out.stdout + out.stderr
        else:
            assert out.returncode == 0, out.stdout + out.stderr


def test_shard_updates_keep_order(crl_issuer):
    rng = random.Random(5)
    records = [revoked_record(rng.getrandbits(64) | 1) for _ in range(500)]
    shard = Shard()
    for record in records:
        shard.upsert(record)
    assert shard.serials == sorted(r.serial for r in records)
    assert shard.entries == Shard.from_records(records).entries
    changed = revoked_record(records[0].serial, RevocationReason.KEY_COMPROMISE, NOW - 9999)
    shard.upsert(changed)
    assert len(shard) == 500
    assert shard.remove(records[1].serial) and not shard.remove(records[1].serial)
    expected = [changed, *records[2:]]
    assert shard.entries == Shard.from_records(expected).entries


def test_signer_must_be_the_issuers_key(test_pki):
    with pytest.raises(ValueError, match="not the issuer certificate's key"):
        CrlIssuer(test_pki.issuer.cert, SoftwareSigner(test_pki.responder.key))


def test_hsm_signed_crl_verifies(softhsm, test_pki, tmp_path):
    """The same builder signs in an HSM: here the CA key itself lives in SoftHSM2."""
    from responder.signing.pkcs11 import Pkcs11KeyRef, Pkcs11Signer

    signer = Pkcs11Signer(
        Pkcs11KeyRef(
            softhsm.module, key_label="p256", token_label="revocd-test", pin_file=softhsm.pin_file
        )
    ).start()
    try:
        public = serialization.load_der_public_key(signer.public_key_info)
        # an intermediate CA whose key is the HSM key, signed by the test root
        import datetime as dt

        from cryptography.hazmat.primitives import hashes

        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name.from_rfc4514_string("CN=hsm ca"))
            .issuer_name(test_pki.root.cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(test_pki.root.key, hashes.SHA256())
        )
        (tmp_path / "hsmca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        records = [revoked_record(s) for s in range(100, 150)]
        der = trio.run(
            build_crl, CrlIssuer(cert, signer), Shard.from_records(records), 3, NOW, NOW + 86400
        )
    finally:
        signer.close()
    out = openssl(
        "crl",
        "-in",
        write_pem(tmp_path / "h.crl", der),
        "-noout",
        "-CAfile",
        tmp_path / "hsmca.pem",
    )
    assert "verify OK" in out.stdout + out.stderr


def test_crl_hsm_table_opens_the_token_key(softhsm, test_pki, tmp_path):
    """[issuers.x.crl.hsm] reaches the key in the token; a wrong PIN names the table."""
    from responder.config import ConfigError, load_config
    from responder.roles.wiring import crl_signer
    from responder.signing.pkcs11 import Pkcs11KeyRef, Pkcs11Signer

    (tmp_path / "issuer.pem").write_bytes(test_pki.issuer.cert_pem)
    (tmp_path / "bad.pin").write_text("not-the-pin")

    def config(pin_file):
        (tmp_path / "revocd.toml").write_text(f"""
[issuers.alpha]
certificate = "issuer.pem"
[issuers.alpha.crl]
url = "http://crl.example/alpha.crl"
[issuers.alpha.crl.hsm]
module = "{softhsm.module}"
token_label = "revocd-test"
key_label = "p256"
pin_file = "{pin_file}"
""")
        return load_config(tmp_path / "revocd.toml").issuers["alpha"]

    direct = Pkcs11Signer(
        Pkcs11KeyRef(
            softhsm.module, key_label="p256", token_label="revocd-test", pin_file=softhsm.pin_file
        )
    ).start()
    try:
        expected = direct.public_key_info
    finally:
        direct.close()
    signer = crl_signer(config(softhsm.pin_file))
    try:
        assert signer.public_key_info == expected
    finally:
        signer.close()
    with pytest.raises(ConfigError, match=r"issuers\.alpha\.crl\.hsm: "):
        crl_signer(config(tmp_path / "bad.pin"))
