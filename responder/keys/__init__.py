"""Responder key lifecycle: generation in an HSM or a file, CSRs, installing a signed
responder certificate and its expiry checks (`lifecycle`, `actions`)."""
