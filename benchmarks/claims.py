"""The database work of a burst, in-process: claiming 1,000 fires, and writing their outcomes.

No scheduler process, no pool, no APScheduler: the two calls a dispatcher makes for a burst,
timed alone, so a change to the claim or the outcome path shows in milliseconds that the burst
benchmark (2b) would blur with the machine's noise. The fires are claimed in the dispatcher's
batches (25, 50, … up to 500), each batch in its transaction, and the outcomes written 1,000 at
a time (the dispatcher writes what has finished by then, often fewer). The outcomes are alike
but for their times (no return value, no log): the best case for a write that sends a value
the rows share once.

    python -m benchmarks.claims --db postgres          # prints a table
    python -m benchmarks.claims --db sqlite --rounds 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
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


def measure(rounds: int) -> tuple[list[float], list[float]]:
    """(seconds to claim each burst, seconds to write each burst's outcomes)."""
    from django.utils import timezone as dj_timezone

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
    # Fire times far ahead: no grace time applies, and every round's fires are new.
    base = datetime(2099, 1, 1, tzinfo=timezone.utc)
    claims, outcomes = [], []
    for index in range(WARM_UP + rounds):
        when = base + timedelta(seconds=10 * index)
        fires = [Fire(task_id, when, None) for task_id in task_ids]
        began = time.perf_counter()
        runs: list[TaskRun] = []
        for start, end in batch_bounds(len(fires)):
            runs += claim_fires(fires[start:end], "bench:claims")
        claimed = time.perf_counter() - began
        assert len(runs) == BURST, f"{len(runs)} of {BURST} fires claimed"
        for run in runs:
            run.status, run.finished_at = TaskRun.Status.SUCCESSFUL, dj_timezone.now()
        began = time.perf_counter()
        for start in range(0, len(runs), RECORD_BATCH_SIZE):
            finish(
                [
                    (run, when + timedelta(seconds=10))
                    for run in runs[start : start + RECORD_BATCH_SIZE]
                ]
            )
        recorded = time.perf_counter() - began
        if index >= WARM_UP:
            claims.append(claimed)
            outcomes.append(recorded)
    return claims, outcomes


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
    claims, outcomes = measure(args.rounds)
    print(f"{BURST:,} fires on {args.db}, {args.rounds} rounds after {WARM_UP} to warm up")
    print(f"{'step':<34} {'median':>8} {'p90':>8} {'per fire':>9}")
    for step, times in (("claim (batches of 25 … 500)", claims), ("write the outcomes", outcomes)):
        p50, p90 = median(times), percentile(times, 90)
        print(f"{step:<34} {p50 * 1000:6.0f} ms {p90 * 1000:5.0f} ms {p50 / BURST * 1e6:6.0f} µs")


if __name__ == "__main__":
    main()
