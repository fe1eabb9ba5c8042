"""CRL generation for revocd."""
