"""`python -m crlgen.checker`: the pre-publish checks of one CRL, in a process of its own.

Reads one JSON request on stdin (the paths of the new and the published CRL, the
issuer's SubjectPublicKeyInfo in hex, the limits, the time) and writes one JSON verdict
on stdout: {"warnings": [...], "missing": [hex serials]} or {"refused": check,
"message": text}. crlgen/publish.py: check_elsewhere runs it; why a process is
explained there.
"""

import datetime as dt
import json
import sys
from pathlib import Path

from .checks import PublishRefused, inspect_crl


def main() -> int:
    request = json.load(sys.stdin)
    previous = request["previous"]
    limits = (
        dt.timedelta(seconds=request["max_validity"]),
        int(request["warn_bytes"]),
        None if request["max_bytes"] is None else int(request["max_bytes"]),
        int(request["clock_skew"]),
    )
    try:
        warnings, missing = inspect_crl(
            Path(request["new"]).read_bytes(),
            bytes.fromhex(request["issuer_spki"]),
            Path(previous).read_bytes() if previous is not None else None,
            limits,
            float(request["now"]),
        )
    except PublishRefused as exc:
        verdict: dict[str, object] = {"refused": exc.check, "message": exc.message}
    else:
        verdict = {"warnings": warnings, "missing": [f"{s:x}" for s in missing]}
    json.dump(verdict, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
