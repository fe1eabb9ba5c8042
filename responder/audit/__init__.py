"""The security audit trail: the hash-chained, fsynced log (`log`) and what revocd
records in it, with the anomaly rules that watch it (`trail`)."""
