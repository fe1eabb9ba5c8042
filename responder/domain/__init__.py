"""The rules of revocation, as pure code: values and the time in, values out.

Nothing here does I/O or imports an event loop, a store driver or an HTTP parser
(tests/unit/test_import_graph.py checks), so every rule can be read, and tested, on
its own:

- `records`: a certificate's status as revocd keeps it;
- `events`: what a CA tells revocd, and the outcome of applying it;
- `transitions`: `apply(record, event, now)`, the reference for every status change.
  The store applies the same rules atomically in Lua (responder/store/lua/); a
  differential test runs random event sequences through both;
- `timing`: when an answer is valid, when it is re-signed (BR 4.9.10).
"""
