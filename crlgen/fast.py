"""The compiled CRL encoder, or its pure-Python twin (REVOCD_PURE_PYTHON=1 forces the twin)."""

from responder.ocsp.fast import load

from . import _entries_py

entries_codec, ENTRIES_COMPILED = load("crlgen._entries_fast", _entries_py)
