"""The revocd command: --help, --version, subcommands, and the demo as far as this version goes."""

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


def test_unbuilt_subcommand_says_so():
    out = _revocd("push")
    assert out.returncode == 2
    assert "not available" in out.stderr


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
