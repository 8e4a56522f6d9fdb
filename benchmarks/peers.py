"""Benchmark 8: the peers issue 16 names, measured in the same run as us.

- **django-apscheduler** (APScheduler 3 with its ``DjangoJobStore``, which reads only due rows):
  start-up, memory and idle CPU with the same 10,000 far-away schedules as benchmark 3/4.
- **plain APScheduler** (a ``BackgroundScheduler`` with its memory store and its default pool of
  ten threads, no database): the p99 lateness of 1,000 jobs due at once every 10 s, against
  ours (benchmark 2b) in the same run. Issue 16's goal: ours ≤ 1.5 x plain APScheduler's.

Each peer runs in a process of its own: django-apscheduler as ``manage.py runapscheduler``
(benchmarks/management, a command as its README shows, and as ours is), plain APScheduler as
``python -m benchmarks.peers --plain-burst``. Needs the ``bench`` extra (django-apscheduler);
without it the django-apscheduler rows say so and are not counted as met.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

from benchmarks.cases import Plan, burst, idle_cpu, startup_rows
from benchmarks.harness import (
    ROOT,
    Result,
    Scheduler,
    create_tasks,
    far_away_tasks,
    median,
    ms,
    percentile,
    reset_tables,
)

TASKS = 10_000
BURST_JOBS, BURST_PERIOD = 1_000, 10


def peers(plan: Plan) -> list[Result]:
    return _plain_burst_rows(plan) + _django_apscheduler_rows(plan)


# -- plain APScheduler's burst, beside ours -------------------------------------------------------


def _plain_burst_rows(plan: Plan) -> list[Result]:
    ours = burst(plan)[0]
    log = plan.log("plain-apscheduler")
    with open(log, "w") as out:
        done = _python("--plain-burst", str(plan.burst_rounds), stdout=out)
    lateness = json.loads(log.read_text().splitlines()[-1]) if done == 0 else []
    plain = percentile(lateness, 99) if lateness else math.nan
    ours_p99 = ours.details["p99"]
    ratio = ours_p99 / plain if plain else math.inf
    return [
        Result(
            f"8. burst: 1,000 due at once every 10 s, plain APScheduler (p99, "
            f"{len(lateness):,} fires)",
            plan.db,
            f"{ms(plain)} (median {ms(median(lateness)) if lateness else '-'})",
            "(the reference)",
            bool(lateness),
            {"late": lateness},
        ),
        Result(
            "8. burst: the same, ours against plain APScheduler's p99",
            plan.db,
            f"{ms(ours_p99)}: {ratio:.1f} x plain APScheduler's",
            "≤ 1.5 x",
            ratio <= 1.5,
            {"ours": ours_p99, "plain": plain},
        ),
    ]


def serve_plain_burst(rounds: int) -> None:
    """In its own process: 1,000 in-memory jobs due at once every 10 s; prints the lateness
    of every call (seconds after its fire time), as one JSON list on the last line."""
    from apscheduler.schedulers.background import BackgroundScheduler

    lateness: list[float] = []
    lock = threading.Lock()
    origin = math.floor(time.time())

    def job() -> None:
        now = time.time()
        fired = origin + math.floor((now - origin) / BURST_PERIOD) * BURST_PERIOD
        if fired < end:  # whole rounds only, as ours
            with lock:
                lateness.append(now - fired)

    first = origin + math.ceil((time.time() + 2 - origin) / BURST_PERIOD) * BURST_PERIOD
    end = first + rounds * BURST_PERIOD
    scheduler = BackgroundScheduler(timezone=timezone.utc)
    start_date = datetime.fromtimestamp(origin, timezone.utc)
    for i in range(BURST_JOBS):
        scheduler.add_job(
            job, "interval", seconds=BURST_PERIOD, start_date=start_date, id=str(i), coalesce=True
        )
    scheduler.start()
    # Whole rounds, from the next fire instant at least a second away (as benchmark 2b).
    time.sleep(max(0.0, first - time.time()))
    with lock:
        lateness.clear()
    time.sleep(max(0.0, end - time.time()) + 3)
    scheduler.shutdown(wait=True)
    with lock:
        print(json.dumps(lateness), flush=True)


# -- django-apscheduler at 10,000 far-away tasks ----------------------------------------------


def _django_apscheduler_rows(plan: Plan) -> list[Result]:
    reset_tables()
    create_tasks(far_away_tasks(TASKS, "idle"))
    ours, scheduler = startup_rows(plan, TASKS, keep_last=True)
    assert scheduler is not None
    ours_idle = idle_cpu(plan, scheduler)
    scheduler.stop()
    if not importlib.util.find_spec("django_apscheduler"):
        return [
            Result(
                "8. django-apscheduler at 10,000 tasks",
                plan.db,
                "not installed (pip install -e .[bench])",
                "measured",
                False,
            )
        ]
    _store_django_apscheduler_jobs()
    theirs = Scheduler(plan.log("django-apscheduler"), command=["-m", "django", "runapscheduler"])
    theirs.wait_ready()
    assert theirs.ready_wall is not None
    time.sleep(3)  # as ours: the first passes settle
    their_rss, _ = theirs.memory_mb()
    their_idle = idle_cpu(plan, theirs)
    theirs.stop()
    pairs = [
        ("start-up until ready", median(ours[0].details["wall"]), theirs.ready_wall, "s"),
        ("resident memory", median(ours[1].details["rss"]), their_rss, "MB"),
        ("idle CPU", ours_idle.details["share"], their_idle.details["share"], "% of a core"),
    ]
    return [
        Result(
            f"8. {what}, 10,000 far-away tasks: ours / django-apscheduler",
            plan.db,
            f"{mine:.2f} / {peer:.2f} {unit} ({mine / peer if peer else math.inf:.2f} x)",
            "≤ 1 x (+10 % for noise)",
            mine <= peer * 1.1,
            {"ours": mine, "theirs": peer},
        )
        for what, mine, peer, unit in pairs
    ]


def _store_django_apscheduler_jobs() -> None:
    """The same 10,000 schedules as ours, as django-apscheduler stores them (pickled jobs)."""
    import pickle

    from apscheduler.job import Job
    from apscheduler.schedulers.background import BackgroundScheduler
    from django_apscheduler.models import DjangoJob

    from django_tasks_sched.triggers import build_trigger

    DjangoJob.objects.all().delete()
    maker = BackgroundScheduler(timezone=timezone.utc)
    now = datetime.now(timezone.utc)
    rows = []
    for i, task in enumerate(far_away_tasks(TASKS, "peer")):
        trigger = build_trigger(task["trigger"], task["trigger_config"])
        job = Job(
            maker,
            id=str(i),
            func="benchmarks.jobs:noop",
            trigger=trigger,
            executor="default",
            args=(),
            kwargs={},
            name=task["name"],
            misfire_grace_time=1,
            coalesce=True,
            max_instances=1,
            next_run_time=trigger.get_next_fire_time(None, now),
        )
        state = pickle.dumps(job.__getstate__(), pickle.HIGHEST_PROTOCOL)
        rows.append(DjangoJob(id=str(i), next_run_time=job.next_run_time, job_state=state))
    DjangoJob.objects.bulk_create(rows, batch_size=1000)


def serve_django_apscheduler() -> None:
    """In the ``runapscheduler`` command's process (a management command of the project, as
    django-apscheduler's README sets it up, and as ours is): its store under a scheduler;
    prints "ready in" once started, runs until SIGTERM."""
    began = time.monotonic()
    from apscheduler.schedulers.background import BackgroundScheduler
    from django_apscheduler.jobstores import DjangoJobStore

    scheduler = BackgroundScheduler(timezone=timezone.utc)
    scheduler.add_jobstore(DjangoJobStore(), "default")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    scheduler.start()
    print(f"django-apscheduler ready in {time.monotonic() - began:.2f}s", flush=True)
    stop.wait()
    scheduler.shutdown(wait=False)


def _python(*args: str, stdout: Any) -> int:
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.call(
        [sys.executable, "-m", "benchmarks.peers", *args], cwd=ROOT, env=env, stdout=stdout
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plain-burst", type=int, metavar="ROUNDS", required=True)
    args = parser.parse_args()
    serve_plain_burst(args.plain_burst)


if __name__ == "__main__":
    main()
