"""A real SoftHSM2 token for tests, and the misbehaving shim module around it."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .conftest import require_tool

SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
)
PIN = "1234"

KEYGEN = """
import sys, pkcs11
from pkcs11 import Attribute, KeyType
from pkcs11.util.ec import encode_named_curve_parameters
module, label, kind, pin = sys.argv[1:5]
token = pkcs11.lib(module).get_token(token_label="revocd-test")
with token.open(rw=True, user_pin=pin) as session:
    if kind == "ed25519":
        params = session.create_domain_parameters(
            KeyType.EC_EDWARDS,
            {Attribute.EC_PARAMS: encode_named_curve_parameters("1.3.101.112")}, local=True)
        params.generate_keypair(store=True, label=label, id=label.encode())
    elif kind.startswith("ec-"):
        curve = {"ec-p256": "secp256r1", "ec-p384": "secp384r1"}[kind]
        params = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)}, local=True)
        params.generate_keypair(store=True, label=label, id=label.encode())
    else:
        session.generate_keypair(KeyType.RSA, int(kind[4:]), store=True, label=label,
                                 id=label.encode())
"""


@dataclass(frozen=True)
class SoftHSM:
    dir: Path
    conf: Path
    module: str
    pin_file: Path

    def generate(self, label: str, kind: str = "ec-p256") -> None:
        """Generate a key pair in the token, in a child process (one PKCS#11 user at a time)."""
        out = subprocess.run(
            [sys.executable, "-c", KEYGEN, self.module, label, kind, PIN],
            env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr


def make_softhsm(directory: Path) -> SoftHSM:
    util = require_tool("softhsm2-util")
    module = next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)
    if module is None:
        require_tool("libsofthsm2.so")  # fails under CI, skips elsewhere
    assert module is not None
    (directory / "tokens").mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\n"
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            "revocd-test",
            "--pin",
            PIN,
            "--so-pin",
            "5678",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    pin_file = directory / "pin"
    pin_file.write_text(PIN + "\n")
    return SoftHSM(directory, conf, module, pin_file)


def build_shim(directory: Path) -> Path:
    cc = require_tool("gcc")
    out = directory / "pkcs11_shim.so"
    source = Path(__file__).parent / "assets" / "pkcs11_shim.c"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(source), "-ldl"],
        check=True,
        timeout=120,
    )
    return out
