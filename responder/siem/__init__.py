"""SIEM export of the audit log (exporter.py) in the formats SIEMs take (formats.py)."""
