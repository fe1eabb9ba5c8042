"""A throwaway PKI (root, issuing CAs, responder and leaf certificates) for the demo,
the tests and the benchmarks. Nothing in the serving path uses it."""
