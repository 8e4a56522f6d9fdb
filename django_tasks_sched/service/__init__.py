"""The long-running side: what ``runscheduler`` runs. Nothing else imports this package.

- :mod:`.runner`: the :class:`~.runner.SchedulerService` loop (reconcile, run-now, heartbeat,
  housekeeping, shutdown);
- :mod:`.jobs`: the APScheduler seam, the one module that drives its scheduler and job store;
- :mod:`.reconcile`: keeps APScheduler's in-memory jobs in step with the Task table; its
  triggers are wrapped by :mod:`.guard` (one failing trigger ends its own job) and, with
  jitter, by :mod:`.jitter` (the same delay in every process);
- :mod:`.executor`: receives due fires from APScheduler, claims them in batches and runs them;
- :mod:`.processes` and :mod:`.worker`: the process executor's worker processes;
- :mod:`.logs`: where log lines go when the project's ``LOGGING`` does not say;
- :mod:`.claims`: the database claims that make each fire run exactly once;
- :mod:`.heartbeat`: the process's heartbeat row;
- :mod:`.housekeeping`: the watchdog (timeouts) and recovery of runs left by dead processes;
- :mod:`.rawrows`: rows for the hot paths without the ORM's per-value conversion;
- :mod:`.listen`: the change-stamp poll and PostgreSQL LISTEN, for near-instant wake-ups;
- :mod:`.watch`: on SQLite under Linux, the watch on the database's files that does the same.
"""
