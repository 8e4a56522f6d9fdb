"""Benchmark 6: fires handed to a worker fleet (django-tasks-db's db_worker, Celery on Redis).

1,000 date tasks due at one instant, each with a ``backend``: one scheduler claims and hands
them off, a fleet of real workers runs them. Measured from the ``TaskRun`` rows: runs recorded
per second end to end (from the instant to the last outcome written), lateness from the nominal
fire time to the worker's start, and none lost or duplicated (each execution appends its run's
id to a trace file). Then the cost of the liveness heartbeat, against a scheduler's steady CPU.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import datetime
from typing import Any

from benchmarks.cases import Plan, _check_clean, _flag_errors, _lateness
from benchmarks.harness import (
    UTC,
    Result,
    Scheduler,
    create_tasks,
    iso,
    median,
    ms,
    percentile,
    reset_tables,
)

COUNT = 1_000
#: Workers keep their database connection between runs (see benchmarks/settings.py).
WORKER_ENV = {"BENCH_CONN_MAX_AGE": "600"}
#: Worker processes of each fleet (the machine has 2 cores; more only adds switching).
FLEET_SIZE = 4


def _fleet(plan: Plan, backend: str) -> list[Scheduler]:
    if backend == "db":
        return [
            Scheduler(
                plan.log(f"db-worker-{i}"),
                "--backend",
                "db",
                "--queue-name",
                "bench",
                "--interval",
                "0.05",
                "--no-startup-delay",
                "--no-reload",
                "--verbosity",
                "0",
                command=["-m", "django", "db_worker"],
                env=WORKER_ENV,
            )
            for i in range(FLEET_SIZE)
        ]
    return [
        Scheduler(
            plan.log("celery"),
            "worker",
            "-Q",
            "bench",
            "-c",
            str(FLEET_SIZE),
            "--pool",
            "prefork",
            "-l",
            "warning",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            command=["-m", "celery", "-A", "benchmarks.celery_app"],
            env=WORKER_ENV,
        )
    ]


def handoff(plan: Plan) -> list[Result]:
    rows = []
    for backend, label in (
        ("db", "django-tasks-db, 4 db_workers"),
        ("celery", "Celery/Redis -c 4"),
    ):
        rows += _handoff_burst(plan, backend, label)
    rows.append(liveness_cost(plan))
    return rows


def _handoff_burst(plan: Plan, backend: str, label: str) -> list[Result]:
    from django_tasks_sched.models import TaskRun

    reset_tables()
    _empty_queues()
    trace = plan.workdir / f"{plan.db}-{backend}-trace.txt"
    trace.unlink(missing_ok=True)
    instant = math.floor(time.time()) + 25
    create_tasks(
        {
            "name": f"fleet-{i:04d}",
            "func": "benchmarks.jobs:trace",
            "args": [str(trace)],
            "trigger": "date",
            "trigger_config": {"run_date": iso(instant)},
            "backend": backend,
            "queue_name": "bench",
        }
        for i in range(COUNT)
    )
    fleet = _fleet(plan, backend)
    scheduler = Scheduler(plan.log(f"handoff-{backend}"))
    scheduler.wait_ready()
    if time.time() > instant - 1:
        print(f"  ! hand-off {backend}: the scheduler was ready too late; the result is not valid")
    time.sleep(max(0.0, instant - time.time()))
    done = TaskRun.objects.filter(status__in=TaskRun.FINISHED_STATUSES)
    deadline = instant + 120
    while time.time() < deadline and done.count() < COUNT:
        time.sleep(0.05)
    scheduler.stop()
    for worker in fleet:
        worker.stop()
    errors = _check_clean(scheduler, f"hand-off {backend}")
    runs = list(
        TaskRun.objects.values_list(
            "task_id", "scheduled_for", "started_at", "finished_at", "status"
        )
    )
    late, missed, unsuccessful = _lateness(runs)
    handed = TaskRun.objects.exclude(handed_at=None).values_list("handed_at", flat=True)
    handed_span = max((when.timestamp() - instant for when in handed if when), default=math.inf)
    finished = [run[3] for run in runs if run[3] is not None]
    span = (max(finished).timestamp() - instant) if finished else math.inf
    rate = len(finished) / span if span > 0 else 0.0
    executions = Counter(trace.read_text().split()) if trace.exists() else Counter()
    duplicated = sum(count - 1 for count in executions.values())
    lost = COUNT - sum(1 for run in runs if run[4] == "SUCCESSFUL")
    p99 = percentile(late, 99)
    rate_target = 1000 if plan.db == "postgres" and backend == "celery" else None
    details: dict[str, Any] = {"missed": missed, "unsuccessful": unsuccessful, "span": span}
    rows = [
        Result(
            f"6a. hand-off to {label}: 1,000 due at once, runs recorded per second",
            plan.db,
            f"{rate:,.0f} /s (all handed off {handed_span:.2f} s and all recorded "
            f"{span:.2f} s after the instant)",
            f"≥ {rate_target:,} /s" if rate_target else "(measured)",
            rate_target is None or rate >= rate_target,
            details,
        ),
        Result(
            f"6b. hand-off to {label}: fire to worker start (p99)",
            plan.db,
            f"{ms(p99)} (median {ms(median(late))}); {lost} lost, {duplicated} duplicated",
            "≤ 1 s, 0 lost, 0 duplicated",
            p99 <= 1.0 and lost == 0 and duplicated == 0,
            details,
        ),
    ]
    return _flag_errors(rows, errors)


def _empty_queues() -> None:
    """Nothing left over from an earlier run in the fleets' queues."""
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.all().delete()
    from benchmarks.celery_app import app

    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("bench")


def liveness_cost(plan: Plan, samples: int = 200) -> Result:
    """The liveness heartbeat's CPU against a scheduler's steady-state CPU at 10,000 tasks.

    One beat is one UPDATE for all of a process's runs in flight (at most THREADS = 10), every
    HEARTBEAT_INTERVAL seconds: timed here over ``samples`` beats with ten live runs, as the
    scheduler's thread does it, and compared with the steady benchmark's CPU (2a) when it ran.
    """
    from django_tasks_sched.conf import get_settings
    from django_tasks_sched.liveness import Liveness
    from django_tasks_sched.models import Task, TaskRun

    reset_tables()
    task = Task.objects.create(
        name="beats", func="benchmarks.jobs:noop", trigger="date", trigger_config={}
    )
    runs = TaskRun.objects.bulk_create(
        TaskRun(task=task, status="RUNNING", started_at=datetime.now(UTC)) for _ in range(10)
    )
    beats = Liveness(get_settings().HEARTBEAT_INTERVAL)
    for run in runs:
        beats.add(run.pk)
    started_cpu, started = time.process_time(), time.perf_counter()
    for _ in range(samples):
        beats.beat()
    cpu_per_beat = (time.process_time() - started_cpu) / samples
    wall_per_beat = (time.perf_counter() - started) / samples
    share = cpu_per_beat / get_settings().HEARTBEAT_INTERVAL  # of one core
    steady_cpu = plan.steady_cpu  # of one core, from benchmark 2a (None: not run)
    if steady_cpu:
        ratio = share / steady_cpu
        measured = (
            f"{ratio:.2%} of the scheduler's steady CPU ({share:.4%} of a core: "
            f"{cpu_per_beat * 1000:.2f} ms CPU, {wall_per_beat * 1000:.2f} ms wall per beat)"
        )
        met = ratio <= 0.05
    else:
        measured = (
            f"{share:.4%} of a core ({cpu_per_beat * 1000:.2f} ms CPU per beat); run with "
            "steady for the ratio"
        )
        met = True
    return Result(
        "6c. liveness heartbeat, CPU against the steady state at 10,000 tasks",
        plan.db,
        measured,
        "≤ 5 %",
        met,
        {"cpu_per_beat": cpu_per_beat, "steady_cpu": steady_cpu},
    )
