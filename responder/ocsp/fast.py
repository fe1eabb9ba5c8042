"""Pick the compiled codec modules, or their pure-Python twins.

Set REVOCD_PURE_PYTHON=1 to force the twins (used by the differential tests
and the benchmarks); a missing compiled module is logged once at import.
"""

import importlib
import logging
import os
from types import ModuleType

from . import _request_py, _response_py

log = logging.getLogger("revocd.ext")


def load(compiled: str, twin: ModuleType) -> tuple[ModuleType, bool]:
    """The compiled module, or its twin (logged), and whether it is the compiled one."""
    if os.environ.get("REVOCD_PURE_PYTHON") == "1":
        log.info("REVOCD_PURE_PYTHON=1: using pure-Python %s", twin.__name__)
        return twin, False
    try:
        return importlib.import_module(compiled), True
    except ImportError as exc:
        log.warning(
            "compiled module %s is not available (%s); using the pure-Python twin %s, "
            "which is slower. Run `make` (setup.py build_ext --inplace) to build it.",
            compiled,
            exc,
            twin.__name__,
        )
        return twin, False


request_codec, REQUEST_COMPILED = load("responder.ocsp._request_fast", _request_py)
response_codec, RESPONSE_COMPILED = load("responder.ocsp._response_fast", _response_py)
