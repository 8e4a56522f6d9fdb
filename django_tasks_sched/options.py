"""The options a Task has beyond what runs and when: one list for every place that lists them.

The admin's form and fieldsets, the facade's ``add_job()`` keywords and declarations in code
and config all read these, so a new option is added here once. Plain names, no models: the
facade imports this at package import time.
"""

from __future__ import annotations

#: How runs of the task execute.
EXECUTION = ("max_instances", "coalesce", "misfire_grace_time", "timeout", "heartbeat_timeout")
#: Schedule policies: what a fire does when the last run still goes, how many fires are left.
POLICIES = ("overlap", "remaining_runs")
#: Options a declaration sets only when it creates the row: the scheduler counts
#: ``remaining_runs`` down, and a sync must not set it back.
INITIAL_ONLY = ("remaining_runs",)
#: Where runs of the task execute: a django.tasks backend's workers, or runscheduler.
WORKERS = ("backend", "queue_name", "priority")
#: What happens after a failed run.
RETRIES = (
    "max_retries",
    "retry_delay",
    "retry_backoff",
    "retry_backoff_max",
    "max_consecutive_failures",
)
#: How long the task's finished runs are kept.
HISTORY = ("keep_runs_days", "keep_runs_count")

#: Every option, in the order forms show them.
TASK_OPTIONS = (*EXECUTION, *POLICIES, *WORKERS, *RETRIES, *HISTORY)
