"""The revocd command: --help, --version, subcommands, and the demo as far as this version goes."""

import json
import subprocess
import sys

from responder import __version__


def _revocd(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "responder", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_version():
    out = _revocd("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"revocd {__version__}"


def test_help_lists_subcommands():
    out = _revocd("--help")
    assert out.returncode == 0
    for command in ("demo", "serve", "crl", "import", "push"):
        assert command in out.stdout


def test_push_needs_a_token_and_an_event(tmp_path):
    out = _revocd(
        "push",
        "--url",
        "http://127.0.0.1:1",
        "--type",
        "issued",
        "--issuer",
        "x",
        "--serial",
        "1",
        "--not-after",
        "2030-01-01T00:00:00Z",
    )
    assert out.returncode == 2 and "token" in out.stderr
    (tmp_path / "t").write_text("secret")
    out = _revocd("push", "--url", "http://127.0.0.1:1", "--token-file", str(tmp_path / "t"))
    assert out.returncode == 2 and "--type" in out.stderr


def test_push_to_the_demo(demo, tmp_path):
    serial = "5eed0c11"
    token = str(demo.dir / "control-token")
    out = _revocd(
        "push",
        "--url",
        demo.control,
        "--token-file",
        token,
        "--type",
        "issued",
        "--issuer",
        "demo",
        "--serial",
        serial,
        "--not-after",
        "2030-01-01T00:00:00Z",
    )
    assert out.returncode == 0, out.stderr
    assert '"applied":1' in out.stdout
    events = tmp_path / "e.json"
    events.write_text(
        json.dumps(
            [
                {
                    "type": "revoked",
                    "issuer": "demo",
                    "serial": serial,
                    "revoked_at": "2026-01-01T00:00:00Z",
                    "reason": "superseded",
                }
            ]
        )
    )
    out = _revocd("push", "--url", demo.control, "--token-file", token, "--file", str(events))
    assert out.returncode == 0 and '"applied":1' in out.stdout
    out = _revocd(
        "push",
        "--url",
        demo.control,
        "--token-file",
        token,
        "--type",
        "revoked",
        "--issuer",
        "demo",
        "--serial",
        serial,
        "--reason",
        "certificateHold",
    )
    assert out.returncode == 1 and "certificateHold is not allowed" in out.stdout


BLOCK_COMPILED = """
import logging, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.endswith("_fast"):
            raise ImportError("no compiler on this machine")
sys.meta_path.insert(0, Block())
logging.basicConfig()
import responder.ocsp as o
print(o.REQUEST_COMPILED, o.RESPONSE_COMPILED)
"""


def test_missing_compiled_module_falls_back_with_log_line():
    out = subprocess.run(
        [sys.executable, "-c", BLOCK_COMPILED], capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "False False"
    assert "compiled module responder.ocsp._request_fast is not available" in out.stderr
    assert "pure-Python twin" in out.stderr


def test_pure_python_can_be_forced():
    out = subprocess.run(
        [sys.executable, "-c", "import responder.ocsp as o; print(o.REQUEST_COMPILED)"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"REVOCD_PURE_PYTHON": "1"},
    )
    assert out.stdout.strip() == "False"
