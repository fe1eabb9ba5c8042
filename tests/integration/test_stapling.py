"""A real stapling server: nginx fetches revocd's answers through the certificate's AIA URL.

nginx staples only `good` answers; for a revoked certificate it logs
`certificate status "revoked"` and staples nothing (nginx ssl_stapling docs).
"""

import subprocess
import time

import pytest

from loadtests.nginx_conf import main_conf
from responder.store.embedded import free_port

from ..conftest import require_tool

SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {dir}/{name}-chain.pem;
        ssl_certificate_key {key};
        ssl_stapling on;
        ssl_stapling_verify on;
        ssl_trusted_certificate {dir}/trust.pem;
        location / {{ return 200 "ok"; }}
    }}
"""


@pytest.fixture(scope="module")
def nginx(demo, tmp_path_factory):
    exe = require_tool("nginx")
    d = tmp_path_factory.mktemp("nginx")
    issuer = (demo.dir / "issuer.pem").read_text()
    (d / "trust.pem").write_text(issuer + (demo.dir / "root.pem").read_text())
    ports = {}
    servers = ""
    for name in ("good", "revoked"):
        (d / f"{name}-chain.pem").write_text(demo.cert(name).read_text() + issuer)
        ports[name] = free_port()
        servers += SERVER.format(
            port=ports[name], dir=d, name=name, key=demo.dir / "certs" / f"{name}.key"
        )
    (d / "nginx.conf").write_text(main_conf(d, servers, worker_connections=64))
    proc = subprocess.Popen(
        [exe, "-c", str(d / "nginx.conf"), "-p", str(d)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    time.sleep(0.5)
    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
    yield d, ports
    proc.terminate()
    proc.wait(10)


def s_client(port: int, name: str) -> str:
    exe = require_tool("openssl")
    out = subprocess.run(
        [
            exe,
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-status",
            "-servername",
            f"{name}.demo.revocd.test",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout + out.stderr


def test_nginx_staples_a_verified_good_answer(nginx):
    _, ports = nginx
    deadline = time.monotonic() + 30
    while True:  # nginx fetches the answer after the first handshake, in the background
        out = s_client(ports["good"], "good")
        if "OCSP Response Status: successful" in out:
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.5)
    assert "Cert Status: good" in out
    assert "Responder Id:" in out


def test_nginx_refuses_to_staple_a_revoked_answer(nginx):
    d, ports = nginx
    deadline = time.monotonic() + 30
    while 'certificate status "revoked"' not in (d / "error.log").read_text():
        out = s_client(ports["revoked"], "revoked")
        assert "OCSP Response Status: successful" not in out
        assert time.monotonic() < deadline, (d / "error.log").read_text()
        time.sleep(0.5)
    out = s_client(ports["revoked"], "revoked")
    assert "OCSP response: no response sent" in out
