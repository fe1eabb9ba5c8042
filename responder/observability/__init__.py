"""What operators see: Prometheus metrics (`metrics`) and their export across worker
processes (`export`), the operational log (`logs`) and its periodic summary line
(`summary`). Importing this package imports none of them: `export` must switch
prometheus_client to multi-process mode before `metrics` loads it."""
