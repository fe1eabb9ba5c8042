"""The work behind `revocd responder-key` (generate, csr, install, check)."""

import argparse
import sys
import time
from pathlib import Path

import trio
from cryptography import x509

from ..audit.trail import open_audit_log, record_command
from ..config import Config, ConfigError, IssuerConfig, load_config
from ..signing import Signer, SignerError, SoftwareSigner
from ..signing.pkcs11 import Pkcs11KeyRef, Pkcs11Signer, generate_key
from .lifecycle import (
    WARN_DAYS,
    cert_summary,
    csr_for_signer,
    generate_file_key,
    hsm_key_ref,
    install_certificate,
)


def _issuer(config: Config, name: str) -> IssuerConfig:
    issuer = config.issuers.get(name)
    if issuer is None:
        raise ConfigError(f"--issuer: {name!r} is not in the configuration")
    return issuer


def _hsm_ref(issuer: IssuerConfig) -> Pkcs11KeyRef:
    assert issuer.hsm is not None
    return hsm_key_ref(issuer.hsm)


def _signer(issuer: IssuerConfig, key_path: str | None = None) -> Signer:
    if issuer.hsm is not None and key_path is None:
        return Pkcs11Signer(_hsm_ref(issuer), rsa_padding=issuer.rsa_padding).start()
    path = Path(key_path) if key_path else issuer.responder_key
    if path is None:
        raise ConfigError(f"issuers.{issuer.name}.responder_key: not configured (or give --key)")
    return SoftwareSigner.from_pem_file(
        path,
        passphrase_file=issuer.key_passphrase_file,
        passphrase_env=issuer.key_passphrase_env,
        rsa_padding=issuer.rsa_padding,  # type: ignore[arg-type]
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        if args.action == "check":
            return _check(config)
        issuer = _issuer(config, args.issuer)
        if args.action == "generate":
            if issuer.hsm is not None:
                ref = _hsm_ref(issuer)
                try:
                    Pkcs11Signer(ref).start().close()
                except SignerError:
                    pass  # not there yet: generate it
                else:
                    raise ConfigError(f"issuers.{issuer.name}.hsm.key_label: the key exists")
                generate_key(ref, args.key_type)
                record_command(
                    open_audit_log(config.audit, config.audit_file),
                    "key.generated",
                    issuer=issuer.name,
                    key_type=args.key_type,
                    where="hsm",
                    key_label=ref.key_label,
                )
                print(f"generated {args.key_type} key {ref.key_label or ref.key_id!r} in the HSM")
            else:
                if not args.out:
                    raise ConfigError("--out: the key file to write (no [hsm] for this issuer)")
                generate_file_key(Path(args.out), args.key_type)
                record_command(
                    open_audit_log(config.audit, config.audit_file),
                    "key.generated",
                    issuer=issuer.name,
                    key_type=args.key_type,
                    where="file",
                    path=str(Path(args.out).resolve()),
                )
                print(f"wrote {args.out} (mode 0600)")
            return 0
        if args.action == "csr":
            signer = _signer(issuer, args.key)
            cn = args.cn or f"{issuer.name} OCSP responder"
            pem = trio.run(csr_for_signer, signer, cn)
            Path(args.out).write_bytes(pem)
            print(
                f"wrote {args.out}: have the CA sign it with id-kp-OCSPSigning and "
                "id-pkix-ocsp-nocheck"
            )
            return 0
        if args.action == "install":
            signer = _signer(issuer)
            pem = Path(args.certificate).read_bytes()
            target = install_certificate(issuer, config.certificates[issuer.name], pem, signer)
            record_command(
                open_audit_log(config.audit, config.audit_file),
                "key.responder_installed",
                issuer=issuer.name,
                path=str(target),
                **cert_summary(x509.load_pem_x509_certificate(pem)),
            )
            print(f"installed {target}; running responders switch to it within seconds")
            return 0
    except (ConfigError, SignerError, ValueError, OSError) as exc:
        print(f"revocd responder-key {args.action}: {exc}", file=sys.stderr)
        return 2
    return 2


def _check(config: Config) -> int:
    worst = 0
    for name, issuer in config.issuers.items():
        path = issuer.responder_certificate
        if path is not None:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        else:
            cert = config.certificates[name]
        days = (cert.not_valid_after_utc.timestamp() - time.time()) / 86400
        state = "ok" if days >= WARN_DAYS else "ROTATE" if days > 0 else "EXPIRED"
        which = "responder" if path else "issuer (signs its own answers)"
        print(
            f"{name}: {which} certificate notAfter {cert.not_valid_after_utc:%Y-%m-%d}, "
            f"{days:.1f} days left: {state}"
        )
        if state != "ok":
            worst = 1
    return worst
