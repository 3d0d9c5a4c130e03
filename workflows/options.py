"""Activity options shared by the loops: timeouts and retry policies, named once."""
from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Database writes: retry until the database is back; only a domain refusal is final.
DB_ACTIVITY = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=60), non_retryable_error_types=["Invalid", "NotFound"],
    ),
)

# The same writes as local activities (workflows/db_writes.py): retried by the worker, each
# attempt bounded; after a minute of failures the SDK backs off with durable timers.
DB_LOCAL_ACTIVITY = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=DB_ACTIVITY["retry_policy"],
)

# Notifications: a few quick tries, then the workflow decides (e.g. phone-call fallback).
NOTIFY_ACTIVITY = dict(
    start_to_close_timeout=timedelta(seconds=20),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10), maximum_attempts=3,
    ),
)

# HL7 to the HIS: retry as long as the HIS is down (it queues in order meanwhile);
# a content refusal (AE/CE) is final.
HL7_DELIVERY_ACTIVITY = dict(
    start_to_close_timeout=timedelta(seconds=60),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=5), backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=5), non_retryable_error_types=["HISRejected", "NotFound"],
    ),
)
