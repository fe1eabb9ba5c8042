"""Prometheus metrics, defined in one place so names stay consistent.

Names follow Prometheus conventions: revocd_ prefix, _total for counters,
_seconds for durations.
"""

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["Counter"]

OCSP_REQUESTS = Counter(
    "revocd_ocsp_requests_total",
    "OCSP requests answered, by HTTP method and result "
    "(good, revoked, unknown, malformed, unauthorized, try_later, internal_error, multi)",
    ["method", "result"],
)
OCSP_LATENCY = Histogram(
    "revocd_ocsp_request_seconds",
    "Time to answer an OCSP request inside the data plane",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
ANSWER_SOURCE = Counter(
    "revocd_answer_source_total",
    "Where successful answers came from: cache, store (pre-signed) or live (signed now)",
    ["source"],
)
CACHE_ENTRIES = Gauge(
    "revocd_cache_entries", "Answers held in the local answer cache", multiprocess_mode="livesum"
)
ARENA_BYTES = Gauge(
    "revocd_shared_cache_bytes",
    "Bytes of answers written to the host's shared answer cache, up to its size (then the "
    "oldest are overwritten)",
    multiprocess_mode="max",
)
ARENA_WRITES = Gauge(
    "revocd_shared_cache_writes",
    "Answers written to the host's shared answer cache since it was created",
    multiprocess_mode="max",
)
CACHE_INVALIDATIONS = Counter(
    "revocd_cache_invalidations_total", "Local cache entries dropped because the status changed"
)
CHANGE_FEED_RESTARTS = Counter(
    "revocd_change_feed_restarts_total",
    "Times the change subscription (re)started; each restart clears the local cache",
)
CHANGE_FEED_RESYNCS = Counter(
    "revocd_change_feed_resyncs_total",
    "Resyncs sent to a consumer of the change feed: after a (re)subscription, or because "
    "the consumer fell behind and notifications for it were dropped",
    ["consumer"],
)
STORE_BATCH_SIZE = Histogram(
    "revocd_store_lookup_batch_size",
    "Cache misses fetched from the store in one round trip",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
STORE_ERRORS = Counter("revocd_store_errors_total", "Store operations that failed", ["operation"])
LIVE_SIGNATURES = Counter(
    "revocd_live_signatures_total", "OCSP responses signed on demand", ["issuer"]
)
LIVE_COALESCED = Counter(
    "revocd_live_coalesced_total", "Requests that shared a signature already being made"
)
SIGN_ERRORS = Counter("revocd_sign_errors_total", "Signing failures", ["issuer", "kind"])
HTTP_CONNECTIONS = Gauge(
    "revocd_http_connections", "Open data plane connections", multiprocess_mode="livesum"
)
REACTOR_ANSWERS = Counter(
    "revocd_reactor_answers_total",
    "Requests answered by the compiled reactor without a trio task: cached GETs, and POSTs "
    "answered at once (a subset of revocd_ocsp_requests_total)",
)
REACTOR_HANDOFFS = Counter(
    "revocd_reactor_handoffs_total",
    "Connections the reactor handed to the trio server: a miss, a POST, a partial or "
    "unusual request, or a client not reading its answers",
)
HTTP_LIMITS = Counter(
    "revocd_http_limit_hits_total",
    "Data plane limits hit: header_bytes, body_bytes, header_timeout, body_timeout, "
    "send_timeout, idle, max_connections, shed, pipelined, malformed_http, method, upgrade, "
    "expectation, http_version, accept_capacity",
    ["limit"],
)
HTTP_INTERNAL_ERRORS = Counter(
    "revocd_http_internal_errors_total",
    "Data plane connections that hit a revocd bug: answered 500 and closed, the server kept "
    "serving (the traceback is logged once)",
)
LIVE_SHED = Counter(
    "revocd_live_sign_shed_total",
    "Live-signing requests answered tryLater at once because they could not be signed "
    "within the deadline: full (live_sign_max_pending waiting), loop_lag (the event loop "
    "is running late) or deadline (took too long)",
    ["issuer", "reason"],
)
LOOP_LAG = Histogram(
    "revocd_event_loop_lag_seconds",
    "How much later than asked a data plane worker's 5 ms timer fired: the wait of a "
    "request that just arrived; live signing is shed while it is over live_sign_loop_lag_ms",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
WORKERS_SERVING = Gauge(
    "revocd_dataplane_workers_serving",
    "Data plane worker processes started and serving (server.workers > 1)",
    multiprocess_mode="livemax",
)
WORKER_RESTARTS = Counter(
    "revocd_dataplane_worker_restarts_total",
    "Data plane worker processes that died and were started again",
)
EVENTS = Counter(
    "revocd_events_total",
    "CA events by result (applied, unchanged, rejected, failed)",
    ["issuer", "result"],
)
AUTH_FAILURES = Counter(
    "revocd_control_auth_failures_total",
    "Control plane requests refused for authentication",
    ["reason"],
)
PROPAGATION = Histogram(
    "revocd_revocation_propagation_seconds",
    "Time from a status change in the store to its invalidation in this process's cache",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
STORE_RESTARTS = Counter(
    "revocd_embedded_store_restarts_total",
    "Times the embedded valkey-server died and was restarted",
)
SIGNER_QUEUE_DEPTH = Gauge(
    "revocd_signer_queue_depth",
    "Signatures waiting for the PKCS#11 owner",
    multiprocess_mode="livesum",
)
SIGNER_QUEUE_FULL = Counter(
    "revocd_signer_queue_full_total", "Signatures refused (tryLater) because the queue was full"
)
SIGNER_TIMEOUTS = Counter(
    "revocd_signer_timeouts_total", "Signatures abandoned because the HSM did not answer in time"
)
SIGNER_BATCH_SIZE = Histogram(
    "revocd_signer_batch_size",
    "Signatures the PKCS#11 owner thread took per wake-up",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
PRESIGNED = Counter(
    "revocd_presigned_total",
    "Answers the pre-signer stored, by why (sweep or change)",
    ["issuer", "why"],
)
PRESIGN_BACKLOG = Gauge(
    "revocd_presign_backlog",
    "Certificates found due for (re)signing and not yet signed",
    ["issuer"],
    multiprocess_mode="livesum",
)
PRESIGN_OLDEST_AGE = Gauge(
    "revocd_presign_oldest_answer_age_seconds",
    "Age (now - thisUpdate) of the oldest of the answers due next, at the last sweep",
    multiprocess_mode="livemax",
)
LEASES_HELD = Gauge(
    "revocd_leases_held",
    "Leases this process holds, by the work they split between revocd processes",
    ["work"],
    multiprocess_mode="livesum",
)
PARTITION_RECORDS_MAX = Gauge(
    "revocd_store_partition_records_max",
    "Records in the largest partition this process pre-signs, at the last sweep; "
    "above 1,000,000 the partition's keys are large enough to stall the store",
    ["issuer"],
    multiprocess_mode="livemax",
)
PRESIGN_ERRORS = Counter("revocd_presign_errors_total", "Pre-signer failures", ["stage"])
RESPONDER_CERT_EXPIRY = Gauge(
    "revocd_responder_cert_expiry_seconds",
    "Seconds until the signing (responder) certificate's notAfter; alert below 30 days",
    ["issuer"],
    multiprocess_mode="livemin",
)
RESPONDER_RELOAD_FAILURES = Counter(
    "revocd_responder_reload_failures_total",
    "Changed responder certificates/keys that failed the checks and were not used",
    ["issuer"],
)
CRL_PUBLISH = Counter(
    "revocd_crl_publish_total",
    "CRL publications by result: published, or refused_<check> (the old CRL stays)",
    ["issuer", "result"],
)
CRL_LAST_PUBLISHED = Gauge(
    "revocd_crl_last_published_timestamp_seconds",
    "When each CRL shard was last published (alert when older than the republish interval)",
    ["issuer", "shard"],
    multiprocess_mode="max",
)
AUDIT_RECORDS = Counter(
    "revocd_audit_records_total", "Records appended to the audit log, by kind", ["kind"]
)
AUDIT_WRITE_FAILURES = Counter(
    "revocd_audit_write_failures_total",
    "Audit log appends that failed; the control plane refuses events (503) until one succeeds",
)
AUDIT_ANOMALIES = Counter(
    "revocd_audit_anomalies_total",
    "Anomalies recorded in the audit log: revocation_burst, unknown_issuer, auth_failure, "
    "answers_near_expiry, responder_cert_expiring, crl_refused",
    ["kind"],
)
ANSWER_SOONEST_EXPIRY = Gauge(
    "revocd_answer_soonest_expiry_seconds",
    "Seconds from the last pre-sign sweep to the earliest nextUpdate among the answers "
    "due next (those the sweep could not replace first); alert under a few hours",
    ["issuer"],
    multiprocess_mode="livemin",
)
CRL_NEXT_UPDATE = Gauge(
    "revocd_crl_next_update_timestamp_seconds",
    "nextUpdate of each CRL shard last published; relying parties reject the CRL after it",
    ["issuer", "shard"],
    multiprocess_mode="max",
)
CRL_REPUBLISH_INTERVAL = Gauge(
    "revocd_crl_republish_interval_seconds",
    "Configured seconds between planned CRL publications (crl.republish_hours)",
    ["issuer"],
    multiprocess_mode="max",
)
SIGNER_QUEUE_CAPACITY = Gauge(
    "revocd_signer_queue_capacity",
    "Size of the PKCS#11 signature queue (hsm.queue_size); depth near it means saturation",
    multiprocess_mode="livemax",
)
STORE_UP = Gauge(
    "revocd_store_up",
    "1 when the last store ping (every 5 s) succeeded, 0 when it failed or timed out",
    multiprocess_mode="livemin",
)

# -- CDN purges and the propagation ledger (responder/cdn, responder/propagation) --------
CDN_PURGES = Counter(
    "revocd_cdn_purge_requests_total",
    "Purge requests sent to a CDN target, by result (ok, refused, error, rate_limited)",
    ["target", "result"],
)
CDN_PURGE_TAGS = Counter(
    "revocd_cdn_purge_tags_total", "Cache tags purged at a CDN target", ["target"]
)
CDN_PURGE_LAG = Gauge(
    "revocd_cdn_purge_lag_seconds",
    "Age of the oldest change a CDN target has not been told about (0: none waiting)",
    ["target"],
    multiprocess_mode="max",
)
CDN_PURGE_ISSUER_WIDE = Counter(
    "revocd_cdn_issuer_purges_total",
    "Whole-issuer purges instead of per-certificate ones (a burst over "
    "cdn.issuer_purge_threshold, a change stream trimmed past a target's position, or a "
    "target's first start)",
    ["target", "why"],
)
PROPAGATION_STEPS = Histogram(
    "revocd_propagation_seconds",
    "From a revocation's acknowledgement to each propagation step (signed, served, purge, "
    "crl, probed)",
    ["step"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400),
)
PROPAGATION_LATE = Counter(
    "revocd_propagation_late_total",
    "Propagation steps that took longer than their [propagation] target",
    ["step"],
)
LEDGER_DROPPED = Counter(
    "revocd_ledger_notes_dropped_total",
    "Ledger notes dropped because the writer was behind or the store failed (the step "
    "then lacks a time; nothing is served differently)",
)
PROBE_CHECKS = Counter(
    "revocd_probe_checks_total",
    "Checks the prober made of what the public URLs serve, by check and result",
    ["check", "result"],
)
PROBE_LAST_RUN = Gauge(
    "revocd_probe_last_run_timestamp_seconds",
    "When the prober last completed a round",
    multiprocess_mode="max",
)
PROBE_PROBLEMS = Gauge(
    "revocd_probe_problems",
    "Problems the prober's last round found, by check",
    ["check"],
    multiprocess_mode="max",
)
INVENTORY_CERTIFICATES = Gauge(
    "revocd_inventory_certificates",
    "Certificates in the inventory at its last scan, by issuer and state (valid, revoked, expired)",
    ["issuer", "state"],
    multiprocess_mode="max",
)
INVENTORY_EXPIRING = Gauge(
    "revocd_inventory_expiring",
    "Valid certificates whose notAfter falls within the next N days, by issuer, owner "
    "(inventory.owner_labels busiest owners; the rest as 'other', none as 'unassigned') "
    "and N (inventory.expiry_days)",
    ["issuer", "owner", "within_days"],
    multiprocess_mode="max",
)
INVENTORY_BUSIEST_DAY_SHARE = Gauge(
    "revocd_inventory_busiest_expiry_day_share",
    "Share of an issuer's valid certificates expiring on its busiest coming day (UTC)",
    ["issuer"],
    multiprocess_mode="max",
)
INVENTORY_MASS_EXPIRY = Gauge(
    "revocd_inventory_mass_expiry",
    "1 while an issuer's busiest coming expiry day holds more than "
    "inventory.mass_expiry_share of its valid certificates (and at least "
    "inventory.mass_expiry_min)",
    ["issuer"],
    multiprocess_mode="max",
)
INVENTORY_SCAN = Gauge(
    "revocd_inventory_last_scan_timestamp_seconds",
    "When the inventory was last scanned for the expiry figures",
    multiprocess_mode="max",
)
CAMPAIGN_SERIALS = Gauge(
    "revocd_campaign_serials",
    "A revocation campaign's serials, by state: total, sent (acknowledged by the store), "
    "and of those sent, applied, unchanged (already so) and rejected",
    ["campaign", "issuer", "state"],
    multiprocess_mode="max",
)
CAMPAIGN_UPDATED = Gauge(
    "revocd_campaign_updated_timestamp_seconds",
    "When a revocation campaign's position last moved (or it was made or finished)",
    ["campaign", "issuer"],
    multiprocess_mode="max",
)
CAMPAIGN_FINISHED = Gauge(
    "revocd_campaign_finished",
    "1 once a revocation campaign has sent all its serials",
    ["campaign", "issuer"],
    multiprocess_mode="max",
)
BLOCKED_KEY_ISSUANCES = Counter(
    "revocd_blocked_key_issuances_total",
    "Issued events for a certificate whose key is on the blocked list",
    ["issuer"],
)
CASCADE_REVOCATIONS = Counter(
    "revocd_key_cascade_revocations_total",
    "Certificates revoked or moved to keyCompromise by revoke-by-key, by issuer",
    ["issuer"],
)
SIEM_EXPORTED = Counter(
    "revocd_siem_exported_total", "Audit records the SIEM collector has taken", ["sink"]
)
SIEM_ERRORS = Counter(
    "revocd_siem_errors_total",
    "SIEM export failures (connect, send, unconfirmed delivery, unreadable audit log)",
    ["sink", "kind"],
)
SIEM_LAG = Gauge(
    "revocd_siem_lag_records",
    "Audit records written but not yet taken by the SIEM collector",
    ["sink"],
    multiprocess_mode="max",
)
SIEM_CONNECTED = Gauge(
    "revocd_siem_connected",
    "1 while the exporter holds a connection to the collector",
    ["sink"],
    multiprocess_mode="max",
)
