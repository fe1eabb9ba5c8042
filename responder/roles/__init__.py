"""What a revocd process is: one module per role, each wiring the library's parts
together for one command.

- `serve`: control plane, data plane (and its worker processes), background work;
- `presign`: the pre-signer alone; `crl`: the CRL generator alone, or one CRL;
- `demo`: `serve` on embedded defaults with a throwaway PKI (`make run`);
- `wiring`: configuration into running objects; `system`: signals, sockets, rlimits.

Library modules never import a role; the CLI (responder/cli/) and tests do.
"""
