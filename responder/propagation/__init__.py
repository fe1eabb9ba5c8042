"""When each revocation became visible where: the ledger (ledger.py), the CRL
publications' part in it (crl.py), the prober (probe.py) and the report (report.py)."""
