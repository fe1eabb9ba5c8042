"""How an audit record looks to a SIEM: RFC 5424 syslog messages carrying the record as
JSON or as CEF, or an OCSF-shaped JSON object; and the severity of each kind of record.

Pure: a record (the audit log's JSON object) in, bytes out. siem/exporter.py frames and
sends them.

Every message names the record's `seq` and `hash` (in RFC 5424 structured data, in CEF
as `externalId`/`cs1`, in OCSF as `metadata.uid`), so a collector can check that nothing
is missing (seq is contiguous) and drop a repeat if it ever sees one (see the exporter's
delivery rule), and the chain can be verified against the audit log itself.
"""

import json
import socket
from collections.abc import Mapping
from enum import IntEnum
from typing import Any

from ..config.model import SiemFormat


# RFC 5424 6.2.1 severities
class Severity(IntEnum):
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6


# Anomalies a PKI team acts on, by how urgently. Anything else under anomaly.* is a
# warning; every other record is informational (events, starts, key actions).
ANOMALY_SEVERITY = {
    "blocked_key": Severity.CRITICAL,  # a compromised key certified again
    "unknown_issuer": Severity.ERROR,  # events for an issuer revocd does not serve
    "revocation_burst": Severity.ERROR,  # mass revocation: an incident, or a misfire
    "mass_expiry": Severity.WARNING,
    "auth_failure": Severity.WARNING,
    "auth_failure_suppressed": Severity.ERROR,  # a flood of refused tokens
    "never_issued_queries": Severity.WARNING,  # OCSP asked about serials never issued
    "answers_near_expiry": Severity.ERROR,
    "responder_certificate_expiring": Severity.ERROR,
}
OTHER_SEVERITY = {
    "event.rejected": Severity.NOTICE,
    "event.failed": Severity.WARNING,
    "cascade.applied": Severity.WARNING,
    "audit.torn_record": Severity.ERROR,
    "config.changed": Severity.NOTICE,
}
_CEF_SEVERITY = {  # CEF 0-10
    Severity.CRITICAL: 10,
    Severity.ERROR: 8,
    Severity.WARNING: 6,
    Severity.NOTICE: 4,
    Severity.INFO: 2,
}
_OCSF_SEVERITY = {  # OCSF severity_id: 1 informational .. 5 critical
    Severity.CRITICAL: 5,
    Severity.ERROR: 4,
    Severity.WARNING: 3,
    Severity.NOTICE: 2,
    Severity.INFO: 1,
}
VERSION = "1"


def severity(kind: str) -> Severity:
    if kind.startswith("anomaly."):
        return ANOMALY_SEVERITY.get(kind.removeprefix("anomaly."), Severity.WARNING)
    return OTHER_SEVERITY.get(kind, Severity.INFO)


def _sd_value(value: object) -> str:
    # RFC 5424 6.3.3: '"', '\' and ']' are escaped in PARAM-VALUE
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _cef_header(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|")


def _cef_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")


def cef(record: Mapping[str, Any], product_version: str = VERSION) -> str:
    """ArcSight CEF:0, with the whole record in `msg` and the fields a SIEM indexes on
    in their CEF keys."""
    kind = str(record.get("kind", "unknown"))
    ext = {
        "rt": record.get("time", ""),
        "externalId": record.get("seq", ""),
        "cs1Label": "hash",
        "cs1": record.get("hash", ""),
        "dvchost": record.get("host", ""),
        "dvcpid": record.get("pid", ""),
    }
    if "source" in record:
        ext["src"] = record["source"]
    if "issuer" in record:
        ext["cs2Label"] = "issuer"
        ext["cs2"] = record["issuer"]
    if "token" in record:
        ext["suser"] = record["token"]
    body = {k: v for k, v in record.items() if k not in ("kind",)}
    ext["msg"] = json.dumps(body, sort_keys=True, separators=(",", ":"))
    header = "|".join(
        _cef_header(x)
        for x in (
            "CEF:0",
            "revocd",
            "revocd",
            product_version,
            kind,
            kind,
            _CEF_SEVERITY[severity(kind)],
        )
    )
    return header + "|" + " ".join(f"{k}={_cef_value(v)}" for k, v in ext.items())


def ocsf(record: Mapping[str, Any]) -> dict[str, Any]:
    """An OCSF-shaped object: class Detection Finding (2004) for anomalies, Entity
    Management / API Activity-like records as class 6003 (API Activity) for the rest.
    The revocd record is kept whole under `unmapped`, so no field is lost."""
    kind = str(record.get("kind", "unknown"))
    anomaly = kind.startswith("anomaly.")
    sev = severity(kind)
    return {
        "class_uid": 2004 if anomaly else 6003,
        "category_uid": 2 if anomaly else 6,
        "activity_name": kind,
        "severity_id": _OCSF_SEVERITY[sev],
        "severity": sev.name.capitalize(),
        "time_dt": record.get("time"),
        "message": kind,
        "metadata": {
            "version": "1.1.0",
            "uid": f"{record.get('seq')}:{record.get('hash')}",
            "product": {"name": "revocd", "vendor_name": "revocd", "version": VERSION},
            "log_name": "audit",
        },
        "device": {"hostname": record.get("host"), "pid": record.get("pid")},
        "unmapped": dict(record),
    }


def message_text(record: Mapping[str, Any], fmt: SiemFormat) -> str:
    if fmt is SiemFormat.CEF:
        return cef(record)
    if fmt is SiemFormat.OCSF:
        return json.dumps(ocsf(record), sort_keys=True, separators=(",", ":"))
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def syslog_message(
    record: Mapping[str, Any],
    fmt: SiemFormat,
    facility: int = 13,
    app_name: str = "revocd",
    hostname: str | None = None,
) -> bytes:
    """One RFC 5424 message: PRI, VERSION, TIMESTAMP (the record's), HOSTNAME, APP-NAME,
    PROCID, MSGID (the record's kind), structured data naming seq and hash, the MSG."""
    kind = str(record.get("kind", "-"))
    pri = facility * 8 + int(severity(kind))
    host = (hostname or str(record.get("host") or socket.gethostname()))[:255] or "-"
    procid = str(record.get("pid", "-"))[:128]
    msgid = kind[:32].replace(" ", "_") or "-"
    sd = (
        f'[revocd@32473 seq="{_sd_value(record.get("seq"))}" '
        f'hash="{_sd_value(record.get("hash"))}"]'
    )
    timestamp = str(record.get("time") or "-")
    head = f"<{pri}>1 {timestamp} {host} {app_name} {procid} {msgid} {sd} "
    # the MSG is UTF-8 with the BOM RFC 5424 6.4 asks for when it is
    return head.encode() + b"\xef\xbb\xbf" + message_text(record, fmt).encode()


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 3.4.1 / RFC 5425 4.3: the length, a space, the message."""
    return str(len(message)).encode() + b" " + message
