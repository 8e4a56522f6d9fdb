"""The per-fire work of a burst, in-process: claiming 1,000 fires, calling them, writing their
outcomes; and plain APScheduler's call of the same 1,000 jobs, for comparison.

No scheduler process, no pool, no APScheduler scheduling: the calls a dispatcher and its pool
threads make for a burst, timed alone, so a change to one of them shows in milliseconds that
the burst benchmark (2b) would blur with the machine's noise. The fires are claimed in the
dispatcher's batches (25, 50, … up to 500), each batch in its transaction; each run is called
as a pool thread calls it (``execute_run``, its "started" and "finished" lines handed to the
log writer, and written, as ``runscheduler`` writes them, here to ``os.devnull``); the outcomes
are written 1,000 at a time (the dispatcher writes what has finished by then, often fewer).
Plain APScheduler's row is ``apscheduler.executors.base.run_job`` for each of 1,000 in-memory
jobs of the same no-op function: what its pool threads run for a fire, its log lines dropped
(logging not configured, as in benchmark 8).

    python -m benchmarks.claims --db postgres          # prints a table
    python -m benchmarks.claims --db sqlite --rounds 5
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from benchmarks.harness import (
    create_tasks,
    database_url,
    median,
    open_fresh_database,
    percentile,
    reset_tables,
)

#: Fires of one burst, as in benchmark 2b.
BURST = 1_000
#: Bursts claimed before the measured ones (connections, caches, the planner's statistics).
WARM_UP = 3


def measure(rounds: int) -> dict[str, list[float]]:
    """Seconds each step took for each burst: claim, call, write the outcomes; and plain
    APScheduler's call of as many jobs."""
    from django_tasks_sched.lifecycle import finish
    from django_tasks_sched.models import Task, TaskRun
    from django_tasks_sched.service.claims import Fire, claim_fires
    from django_tasks_sched.service.executor import RECORD_BATCH_SIZE, batch_bounds

    reset_tables()
    create_tasks(
        {"name": f"burst-{i:04d}", "trigger": "interval", "trigger_config": {"seconds": 10}}
        for i in range(BURST)
    )
    task_ids = list(Task.objects.values_list("pk", flat=True))
    plain_jobs = _plain_jobs()
    # Fire times far ahead: no grace time applies, and every round's fires are new.
    base = datetime(2099, 1, 1, tzinfo=timezone.utc)
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    for index in range(WARM_UP + rounds):
        when = base + timedelta(seconds=10 * index)
        fires = [Fire(task_id, when, None) for task_id in task_ids]
        began = time.perf_counter()
        runs: list[TaskRun] = []
        for start, end in batch_bounds(len(fires)):
            runs += claim_fires(fires[start:end], "bench:claims")
        claimed = time.perf_counter() - began
        assert len(runs) == BURST, f"{len(runs)} of {BURST} fires claimed"
        called = _call(runs)
        assert all(run.status == TaskRun.Status.SUCCESSFUL for run in runs)
        began = time.perf_counter()
        for start in range(0, len(runs), RECORD_BATCH_SIZE):
            finish(
                [
                    (run, when + timedelta(seconds=10))
                    for run in runs[start : start + RECORD_BATCH_SIZE]
                ]
            )
        recorded = time.perf_counter() - began
        plain = _call_plain(plain_jobs)
        if index >= WARM_UP:
            for step, took in zip(STEPS, (claimed, called, recorded, plain), strict=True):
                times[step].append(took)
    return times


#: The rows of the table, in the order :func:`measure` times them.
STEPS = (
    "claim (batches of 25 … 500)",
    "call the runs, log their lines",
    "write the outcomes",
    "plain APScheduler: call the jobs",
)


def _call(runs: Sequence[Any]) -> float:
    """Seconds to call ``runs`` as the scheduler's pool threads do, their lines written."""
    from django_tasks_sched.execution import execute_run

    finished: list[Any] = []
    lines: list[logging.LogRecord] = []
    began = time.perf_counter()
    for run in runs:
        execute_run(run, worker_id="bench:claims", record=finished.append, announce=lines.append)
    for record in lines:  # the log writer's part
        logging.getLogger(record.name).handle(record)
    return time.perf_counter() - began


def _plain_jobs() -> list[Any]:
    from apscheduler.schedulers.background import BackgroundScheduler

    from benchmarks.jobs import noop

    scheduler = BackgroundScheduler(timezone=timezone.utc)  # never started: jobs only
    # The scheduler's defaults are applied when it starts: given here, as its defaults are.
    return [
        scheduler.add_job(
            noop, "interval", seconds=10, id=str(i), coalesce=True, misfire_grace_time=1
        )
        for i in range(BURST)
    ]


def _call_plain(jobs: Sequence[Any]) -> float:
    """Seconds for APScheduler's pool-thread call of each job (``run_job``), due now."""
    from apscheduler.executors.base import run_job

    began = time.perf_counter()
    for job in jobs:
        run_job(job, "default", [datetime.now(timezone.utc)], "apscheduler.executors.default")
    return time.perf_counter() - began


def _log_like_runscheduler() -> None:
    """Our run lines at INFO through a stream handler, as ``runscheduler`` sets them up (to
    ``os.devnull``); APScheduler's are dropped at WARNING, as plain APScheduler's are."""
    from django_tasks_sched.service.logs import log_to_stderr

    logging.getLogger("django_tasks_sched").setLevel(logging.INFO)
    log_to_stderr(logging.INFO)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115  (until the process ends)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    url = database_url(args.db, Path(tempfile.mkdtemp(prefix="dts-claims-")))
    if args.db == "postgres":
        # A database of its own: benchmarks/run.py may be using (and dropping) its own.
        parts = urlsplit(url)
        url = urlunsplit(parts._replace(path=f"{parts.path}_claims"))
    open_fresh_database(args.db, url)
    _log_like_runscheduler()
    times = measure(args.rounds)
    print(f"{BURST:,} fires on {args.db}, {args.rounds} rounds after {WARM_UP} to warm up")
    print(f"{'step':<34} {'median':>8} {'p90':>8} {'per fire':>9}")
    for step in STEPS:
        p50, p90 = median(times[step]), percentile(times[step], 90)
        print(f"{step:<34} {p50 * 1000:6.0f} ms {p90 * 1000:5.0f} ms {p50 / BURST * 1e6:6.0f} µs")


if __name__ == "__main__":
    main()
