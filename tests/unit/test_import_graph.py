"""The pure layers stay pure: importing the domain rules or the OCSP codec loads no
event loop, no store driver, no HTTP parser and no metrics registry."""

import subprocess
import sys

FORBIDDEN = ("trio", "anyio", "coredis", "httptools", "hypercorn", "prometheus_client", "pkcs11")


def loaded_by(*modules: str) -> set[str]:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print('\\n'.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_domain_imports_no_io_library():
    loaded = loaded_by(
        "responder.domain.records",
        "responder.domain.events",
        "responder.domain.transitions",
        "responder.domain.timing",
        "responder.domain.answering",
    )
    assert not {m for m in loaded if m.split(".")[0] in FORBIDDEN}
    # and nothing of revocd outside the domain and the codec it names values with
    outside = {
        m
        for m in loaded
        if m.startswith("responder.") and not m.startswith(("responder.domain", "responder.ocsp"))
    }
    assert not outside, outside


def test_ocsp_codec_imports_no_io_library():
    loaded = loaded_by("responder.ocsp")
    assert not {m for m in loaded if m.split(".")[0] in FORBIDDEN}
    assert not {m for m in loaded if m.startswith("responder.") and "ocsp" not in m}


def test_building_the_command_line_loads_no_io_library():
    code = "import sys, responder.cli as c; c.build_parser(); print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not {m for m in out.stdout.split() if m.split(".")[0] in FORBIDDEN}


def test_no_library_module_imports_a_command_or_a_role():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*(root / "responder").rglob("*.py"), *(root / "crlgen").rglob("*.py")]:
        rel = path.relative_to(root)
        if rel.parts[:2] in {("responder", "cli"), ("responder", "roles")}:
            continue
        if rel.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                parts = (node.module or "").split(".")
                if {"cli", "roles"} & set(parts[:2]) or parts[:2] in (
                    ["responder", "cli"],
                    ["responder", "roles"],
                ):
                    offenders.append(f"{rel}: from {node.module}")
    assert not offenders, offenders
