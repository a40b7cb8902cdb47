"""Prometheus series that staffsync exports on ``/metrics``.

Every series lives in :data:`REGISTRY`, a registry of our own rather than the client
library's global one, so that ``/metrics`` shows exactly these and tests can read them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "CHANGES",
    "LAST_SUCCESS",
    "RATE_LIMITED",
    "RECORDS_FAILED",
    "RECORDS_REJECTED",
    "REGISTRY",
    "RETRIES",
    "RUNS",
    "RUN_DURATION",
    "RUN_LOCK_SKIPPED",
    "STAFFBASE_REQUESTS",
    "TOKEN_FETCHES",
]

REGISTRY = CollectorRegistry(auto_describe=True)

RUNS = Counter(
    "staffsync_runs",
    "Sync runs by mode (incremental or full) and outcome status.",
    ["mode", "status"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "staffsync_run_duration_seconds",
    "Wall time of sync runs, from lock to report.",
    ["mode"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "staffsync_last_success_timestamp_seconds",
    "Unix time at which the last run that ended succeeded or partial finished.",
    ["mode"],
    registry=REGISTRY,
)
CHANGES = Counter(
    "staffsync_changes",
    "Changes applied to Staffbase, by action (created, updated, deactivated …).",
    ["action"],
    registry=REGISTRY,
)
RECORDS_REJECTED = Counter(
    "staffsync_records_rejected",
    "HR records rejected by validation.",
    registry=REGISTRY,
)
RECORDS_FAILED = Counter(
    "staffsync_records_failed",
    "Records whose Staffbase request still failed after its retries.",
    registry=REGISTRY,
)
STAFFBASE_REQUESTS = Counter(
    "staffsync_staffbase_requests",
    "Requests sent to Staffbase, by method, route template and response status "
    "('error' when no response arrived).",
    ["method", "route", "status"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "staffsync_staffbase_retries",
    "Staffbase requests sent again, by reason (rate_limited, server_error, connection …).",
    ["reason"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "staffsync_staffbase_rate_limited",
    "HTTP 429 responses received from Staffbase.",
    registry=REGISTRY,
)
TOKEN_FETCHES = Counter(
    "staffsync_token_fetches",
    "OAuth access tokens fetched from the token endpoint.",
    registry=REGISTRY,
)
RUN_LOCK_SKIPPED = Counter(
    "staffsync_run_lock_skipped",
    "Scheduled runs skipped because another process held the run lock.",
    registry=REGISTRY,
)
