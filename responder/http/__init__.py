"""The data plane's HTTP/1.x: `protocol` parses and serialises with no I/O, `server`
runs it on trio sockets with deadlines and connection caps.

Nothing is imported here on purpose: `protocol` is pure and light, and the config model
imports it for its defaults, while `server` loads prometheus_client (through metrics),
which must not happen before `revocd serve` has switched metrics to multiprocess mode.
"""
