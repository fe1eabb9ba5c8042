"""Shared fixtures: a real demo PKI on disk, and real openssl.

The suite is in three parts: tests/unit (pure rules and codecs, no servers, seconds:
`make unit`), tests/integration (one part of revocd against the real thing: valkey-server,
SoftHSM2, openssl, nginx), tests/e2e (revocd processes as an operator runs them; all
marked `slow`). `make test` runs all three.
"""

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from responder.testing import pki

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.slow)


def require_tool(name: str) -> str:
    """Path of a system tool the test drives for real.

    Under CI a missing tool fails the test (.ci/run installs it); on a
    developer machine it skips with the package to install.
    """
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make sysdeps installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def openssl(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = require_tool("openssl")
    result = subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


@dataclass(frozen=True)
class PkiFiles:
    dir: Path
    root: pki.Issued
    issuer: pki.Issued
    responder: pki.Issued
    leaves: dict[str, pki.Issued]

    def path(self, name: str) -> Path:
        return self.dir / name


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    d = tmp_path_factory.mktemp("pki")
    root = pki.make_root("test root")
    issuer = pki.make_intermediate("test issuer", root)
    responder = pki.make_responder(issuer)
    root.write(d / "root.pem", d / "root.key")
    issuer.write(d / "issuer.pem", d / "issuer.key")
    responder.write(d / "responder.pem", d / "responder.key")
    leaves = {}
    for i, name in enumerate(("good", "revoked", "unknown", "extra")):
        # Serials with the high bit set exercise the INTEGER sign octet.
        serial = (0x80 << 144) | (i + 1) if name == "extra" else 0x1000 + i
        leaves[name] = pki.make_leaf(issuer, serial, f"{name}.test", "http://127.0.0.1:1/")
        leaves[name].write(d / f"{name}.pem", d / f"{name}.key")
    return PkiFiles(d, root, issuer, responder, leaves)


@pytest.fixture(scope="session")
def valkey_standalone(tmp_path_factory: pytest.TempPathFactory):
    from responder.store import ValkeyProcess

    server = ValkeyProcess(tmp_path_factory.mktemp("valkey"), password="test-secret").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory):
    from .valkey import start_cluster

    nodes = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield nodes
    for node in nodes:
        node.stop()


@pytest.fixture(params=["standalone", "cluster"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The same store tests run on one server and on a 3-master cluster."""
    if request.param == "standalone":
        return request.getfixturevalue("valkey_standalone").url
    from .valkey import cluster_url

    return cluster_url(request.getfixturevalue("valkey_cluster"))


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """`revocd demo` as a user runs it (on free ports), shared by the tests that only read."""
    from .service_helpers import start_demo

    d = start_demo(tmp_path_factory.mktemp("demo") / "revocd-demo")
    yield d
    assert d.proc.stop() == 0, d.proc.output
    assert "revocd demo stopped" in d.proc.output


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory):
    """A SoftHSM2 token (label revocd-test) with keys for the PKCS#11 tests.

    SOFTHSM2_CONF is set for the whole test process: the module reads it once, at
    C_Initialize.
    """
    from .hsm import make_softhsm

    hsm = make_softhsm(tmp_path_factory.mktemp("softhsm"))
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    for label, kind in (
        ("p256", "ec-p256"),
        ("p384", "ec-p384"),
        ("rsa", "rsa-2048"),
        ("ed", "ed25519"),
    ):
        hsm.generate(label, kind)
    return hsm
