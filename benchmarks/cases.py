"""The benchmarks. Each resets the tables, spawns real schedulers and returns table rows."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    UTC,
    Result,
    Scheduler,
    create_tasks,
    far_away_tasks,
    iso,
    median,
    ms,
    percentile,
    reset_tables,
    wait_until_idle,
)


@dataclass
class Plan:
    """How much to measure: ``--quick`` trims samples and windows, not the task counts."""

    quick: bool
    db: str
    workdir: Path
    #: The steady scheduler's CPU, as a share of one core (set by :func:`steady`).
    steady_cpu: float | None = None

    @property
    def propagation_samples(self) -> int:
        return 20 if self.quick else 50

    @property
    def idle_window(self) -> float:
        # The full window spans two RECONCILE_INTERVALs (60 s), so it includes two full
        # passes; the CPU clock counts in hundredths of a second, 0.008 % of 120 s.
        return 30.0 if self.quick else 120.0

    @property
    def steady_rounds(self) -> int:
        return 1 if self.quick else 3

    @property
    def burst_rounds(self) -> int:
        return 3 if self.quick else 6

    @property
    def startup_repeats(self) -> int:
        return 1 if self.quick else 3

    def log(self, name: str) -> Path:
        return self.workdir / f"{self.db}-{name}.log"


def _check_clean(scheduler: Scheduler, name: str) -> int:
    """Print the scheduler's errors, if any; a case whose scheduler logged errors is not met."""
    errors = scheduler.errors()
    if errors:
        print(f"  ! {name}: the scheduler logged errors (see {scheduler.log_path}):")
        for line in errors[:5]:
            print(f"    {line}")
    return len(errors)


def _flag_errors(rows: list[Result], errors: int) -> list[Result]:
    for row in rows:
        if errors:
            row.measured += f"; scheduler logged {errors} error line(s)"
            row.met = False
    return rows


# -- 1, 3 (10,000) and 4: one scheduler with 10,000 idle tasks -------------------------------------


def idle_scheduler(plan: Plan) -> list[Result]:
    """Start-up and memory at 10,000 tasks, change propagation, then idle CPU."""
    reset_tables()
    create_tasks(far_away_tasks(10_000, "idle"))
    results, scheduler = startup_rows(plan, 10_000, keep_last=True)
    assert scheduler is not None
    results += propagation(plan, scheduler)
    results.append(idle_cpu(plan, scheduler))
    scheduler.stop()
    return _flag_errors(results, _check_clean(scheduler, "idle"))


def startup_rows(
    plan: Plan, count: int, *, keep_last: bool = False
) -> tuple[list[Result], Scheduler | None]:
    """Start a scheduler on ``count`` tasks (repeatedly); report ready time and memory.

    With ``keep_last`` the last scheduler is left running and returned.
    """
    kept = None
    errors = 0
    ready, wall, rss, peak = [], [], [], []
    repeats = plan.startup_repeats if count <= 10_000 else max(1, plan.startup_repeats - 1)
    for i in range(repeats):
        scheduler = Scheduler(plan.log(f"startup-{count}-{i}"))
        ready.append(scheduler.wait_ready())
        assert scheduler.ready_wall is not None
        wall.append(scheduler.ready_wall)
        time.sleep(3)  # let the first loop pass (and its allocations) settle
        now, high = scheduler.memory_mb()
        rss.append(now)
        peak.append(high)
        if keep_last and i == repeats - 1:
            kept = scheduler
        else:
            scheduler.stop()
            errors += _check_clean(scheduler, f"startup {count}")
    time_target, memory_target = (1.0, 100.0) if count <= 10_000 else (10.0, 300.0)
    label = f"{count:,}"
    # The headline is what an operator waits for: from launching the command (interpreter,
    # Django set-up, system checks) to the "ready" line. The service's own share in brackets.
    rows = [
        Result(
            f"3. start-up until ready, {label} tasks",
            plan.db,
            f"{median(wall):.2f} s (loading the tasks {median(ready):.2f} s)",
            f"≤ {time_target:.0f} s",
            median(wall) <= time_target,
            {"ready": ready, "wall": wall},
        ),
        Result(
            f"3. resident memory, {label} tasks",
            plan.db,
            f"{median(rss):.0f} MB (peak {median(peak):.0f} MB)",
            f"≤ {memory_target:.0f} MB",
            median(rss) <= memory_target,
            {"rss": rss, "peak": peak},
        ),
    ]
    return _flag_errors(rows, errors), kept


def startup_100k(plan: Plan) -> list[Result]:
    reset_tables()
    create_tasks(far_away_tasks(100_000, "big"))
    return startup_rows(plan, 100_000)[0]


def propagation(plan: Plan, scheduler: Scheduler) -> list[Result]:
    """A commit in this process → the run's start in the scheduler, four ways.

    Each sample makes a task due *now* (or queues a run) and waits for the run's
    ``started_at``, which the scheduler sets when it calls the function: the whole path of a
    change (commit, stamp or NOTIFY, reconcile, APScheduler, claim, thread) is inside.
    """
    from django_tasks_sched.models import Task, TaskRun

    samples = plan.propagation_samples
    far = {"run_date": "2099-01-01T00:00:00"}
    create_tasks(
        {
            "name": f"prop-{how}-{i:03d}",
            "trigger": "date",
            "trigger_config": far,
            "active": how == "edit",
        }
        for how in ("save", "update", "edit")
        for i in range(samples)
    )
    manual = Task.objects.create(
        name="prop-run-now", func="benchmarks.jobs:noop", trigger="date", trigger_config=far
    )
    time.sleep(2)  # the scheduler takes the new tasks in before the first sample

    def wait_started(run: dict[str, int], since: float) -> float:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            started = (
                TaskRun.objects.filter(**run, started_at__isnull=False)
                .values_list("started_at", flat=True)
                .first()
            )
            if started is not None:
                return started.timestamp() - since
            time.sleep(0.005)
        return math.inf

    # Each returns how to find its run, and the moment just before the write began.
    def via_save(i: int) -> tuple[dict[str, int], float]:
        task = Task.objects.get(name=f"prop-save-{i:03d}")
        begun = time.time()
        task.active = True
        task.trigger_config = {"run_date": iso(begun)}
        task.save()
        return {"task_id": task.pk}, begun

    def via_edit(i: int) -> tuple[dict[str, int], float]:
        task = Task.objects.get(name=f"prop-edit-{i:03d}")
        begun = time.time()
        task.trigger_config = {"run_date": iso(begun)}
        task.save()
        return {"task_id": task.pk}, begun

    def via_update(i: int) -> tuple[dict[str, int], float]:
        pk = Task.objects.get(name=f"prop-update-{i:03d}").pk
        begun = time.time()
        Task.objects.filter(pk=pk).update(active=True, trigger_config={"run_date": iso(begun)})
        return {"task_id": pk}, begun

    def via_run_now(i: int) -> tuple[dict[str, int], float]:
        begun = time.time()
        return {"pk": manual.run_now().pk}, begun

    ways: list[tuple[str, Callable[[int], tuple[dict[str, int], float]]]] = [
        ("Task.save() enabling a task, due now", via_save),
        ("Task.save() editing an active task to fire now", via_edit),
        ("QuerySet.update() enabling a task, due now", via_update),
        ("task.run_now()", via_run_now),
    ]
    target = 1.0 if plan.db == "sqlite" else 0.2
    rows = []
    for label, action in ways:
        latencies = []
        for i in range(samples):
            run, begun = action(i)
            latencies.append(wait_started(run, begun))
            # Off the poll interval's phase, so samples do not all land at the same point.
            time.sleep(random.uniform(0.05, 0.3))
        p95 = percentile(latencies, 95)
        rows.append(
            Result(
                f"1. change propagation: {label} (p95, n={samples})",
                plan.db,
                f"{ms(p95)} (median {ms(median(latencies))}, max {ms(max(latencies))})",
                f"≤ {ms(target)}",
                p95 <= target,
                {"latencies": latencies},
            )
        )
    return rows


def idle_cpu(plan: Plan, scheduler: Scheduler) -> Result:
    wait_until_idle()
    time.sleep(2)
    before, began = scheduler.cpu_seconds(), time.monotonic()
    time.sleep(plan.idle_window)
    used = scheduler.cpu_seconds() - before
    share = used / (time.monotonic() - began) * 100
    return Result(
        f"4. idle CPU, 10,000 far-away tasks ({plan.idle_window:.0f} s)",
        plan.db,
        f"{share:.2f} % of a core",
        "≤ 0.1 %",
        share <= 0.1,
        {"cpu_seconds": used, "share": share},
    )


# -- 2 and 5: fire lateness and throughput ---------------------------------------------------------


def _runs_between(start: float, end: float) -> list[tuple[Any, ...]]:
    from django_tasks_sched.models import TaskRun

    return list(
        TaskRun.objects.filter(
            scheduled_for__gte=datetime.fromtimestamp(start, UTC),
            scheduled_for__lt=datetime.fromtimestamp(end, UTC),
        ).values_list("task_id", "scheduled_for", "started_at", "finished_at", "status")
    )


def _lateness(runs: list[tuple[Any, ...]]) -> tuple[list[float], int, int]:
    """(lateness of each started run, runs recorded MISSED, runs not SUCCESSFUL).

    Lateness is ``started_at - scheduled_for``: ``started_at`` is when the scheduler called
    the function, so waiting for a claim or for a free thread counts as late.
    """
    late = [
        started.timestamp() - scheduled.timestamp()
        for _, scheduled, started, _, status in runs
        if started is not None and status != "MISSED"
    ]
    missed = sum(1 for run in runs if run[4] == "MISSED")
    unsuccessful = sum(1 for run in runs if run[4] != "SUCCESSFUL")
    return late, missed, unsuccessful


def _lateness_row(
    name: str, plan: Plan, runs: list[tuple[Any, ...]], expected: int, target: float, extra: str
) -> Result:
    """A lateness row: p99 against ``target``, and no fire missed (recorded MISSED or absent)."""
    late, missed, unsuccessful = _lateness(runs)
    absent = expected - len(runs)
    lost = missed + absent
    p99 = percentile(late, 99)
    return Result(
        name,
        plan.db,
        f"{ms(p99)} (median {ms(median(late))}, max {ms(max(late, default=math.nan))}); "
        f"{lost} missed{extra}",
        f"≤ {ms(target)}, none missed",
        p99 <= target and lost == 0 and unsuccessful == 0,
        {
            "expected": expected,
            "missed": missed,
            "absent": absent,
            "unsuccessful": unsuccessful,
            "p99": p99,
        },
    )


def steady(plan: Plan) -> list[Result]:
    """10,000 tasks every 60 s, phases spread evenly over the minute (~167 fires/s)."""
    count, period = 10_000, 60.0
    reset_tables()
    origin = math.floor(time.time()) - period
    create_tasks(
        {
            "name": f"steady-{i:05d}",
            "trigger": "interval",
            "trigger_config": {
                "seconds": int(period),
                "start_date": iso(origin + i * period / count),
            },
        }
        for i in range(count)
    )
    scheduler = Scheduler(plan.log("steady"))
    scheduler.wait_ready()
    # Fires that came due between creating the tasks and the scheduler's start are caught up
    # at once, a burst of a few hundred: the window opens once that is over.
    start = time.time() + CATCH_UP_SECONDS
    end = start + plan.steady_rounds * period
    time.sleep(CATCH_UP_SECONDS)
    cpu_before = scheduler.cpu_seconds()
    time.sleep(end - time.time())
    cpu = (scheduler.cpu_seconds() - cpu_before) / (end - start) * 100
    plan.steady_cpu = cpu / 100  # for the liveness heartbeat's share (benchmarks/handoff.py)
    time.sleep(5)
    wait_until_idle()
    scheduler.stop()
    errors = _check_clean(scheduler, "steady")
    expected = sum(
        _fires_between(origin + i * period / count, period, start, end) for i in range(count)
    )
    row = _lateness_row(
        f"2a. fire lateness, steady: 10,000 tasks every 60 s (p99, {expected:,} fires)",
        plan,
        _runs_between(start, end),
        expected,
        0.050,
        f"; scheduler CPU {cpu:.0f} %",
    )
    return _flag_errors([row], errors)


#: Seconds from the steady scheduler's start to the opening of the measured window.
CATCH_UP_SECONDS = 10


def _fires_between(first: float, period: float, start: float, end: float) -> int:
    """How many of first + k·period (k ≥ 0) fall in [start, end)."""
    k0 = max(0, math.ceil((start - first) / period))
    k1 = math.ceil((end - first) / period)
    return max(0, k1 - k0)


def burst(plan: Plan) -> list[Result]:
    """1,000 tasks all due at the same instant, every 10 s."""
    count, period = 1_000, 10.0
    reset_tables()
    origin = math.floor(time.time())
    create_tasks(
        {
            "name": f"burst-{i:04d}",
            "trigger": "interval",
            "trigger_config": {"seconds": int(period), "start_date": iso(origin)},
        }
        for i in range(count)
    )
    scheduler = Scheduler(plan.log("burst"))
    scheduler.wait_ready()
    # Whole rounds only: from the next fire instant at least a second away.
    start = origin + math.ceil((time.time() + 1 - origin) / period) * period
    end = start + plan.burst_rounds * period
    time.sleep(max(0.0, end - time.time()) + 5)
    wait_until_idle()
    scheduler.stop()
    errors = _check_clean(scheduler, "burst")
    expected = count * plan.burst_rounds
    row = _lateness_row(
        f"2b. fire lateness, burst: 1,000 at once every 10 s (p99, {expected:,} fires)",
        plan,
        _runs_between(start, end),
        expected,
        1.0,
        "",
    )
    return _flag_errors([row], errors)


def burst_10k(plan: Plan) -> list[Result]:
    """10,000 tasks due at one instant; also gives recorded runs per second."""
    from django_tasks_sched.models import TaskRun

    count = 10_000
    reset_tables()
    # Due a little after the scheduler is expected to be ready (start-up is benchmark 3).
    instant = math.floor(time.time()) + 20
    create_tasks(
        {
            "name": f"instant-{i:05d}",
            "trigger": "date",
            "trigger_config": {"run_date": iso(instant)},
        }
        for i in range(count)
    )
    scheduler = Scheduler(plan.log("burst-10k"))
    scheduler.wait_ready()
    if time.time() > instant - 1:
        print("  ! burst 10k: the scheduler was ready too late; the result is not valid")
    time.sleep(max(0.0, instant - time.time()))
    # Recorded means written: poll the table until every run has its final status.
    final = TaskRun.objects.filter(scheduled_for=datetime.fromtimestamp(instant, UTC)).exclude(
        status=TaskRun.Status.RUNNING
    )
    recorded, done = 0, math.inf
    deadline = instant + 60
    while time.time() < deadline:
        recorded = final.count()
        if recorded >= count:
            done = time.time() - instant
            break
        time.sleep(0.05)
    wait_until_idle()
    scheduler.stop()
    errors = _check_clean(scheduler, "burst 10k")
    runs = _runs_between(instant, instant + 1)
    late, missed, unsuccessful = _lateness(runs)
    lost = missed + count - len(runs)
    last_start = max(late, default=math.inf)
    rate = recorded / done if done > 0 else 0.0
    rate_target = 300 if plan.db == "sqlite" else 1000
    rows = [
        Result(
            "2c. burst: 10,000 due at one instant, last started after",
            plan.db,
            f"{ms(last_start)} (median {ms(median(late))}); {lost} missed",
            "≤ 10 s, none missed",
            last_start <= 10 and lost == 0 and unsuccessful == 0,
            {"missed": missed, "unsuccessful": unsuccessful},
        ),
        Result(
            "5. recorded runs per second (no-op tasks, 10,000 due at once)",
            plan.db,
            f"{rate:,.0f} /s (all {recorded:,} recorded {done:.1f} s after the instant)",
            f"≥ {rate_target:,} /s",
            rate >= rate_target,
            {"done": done, "recorded": recorded},
        ),
    ]
    return _flag_errors(rows, errors)


def peers(plan: Plan) -> list[Result]:
    """Benchmark 8, in its own module: django-apscheduler and plain APScheduler, beside us."""
    from benchmarks.peers import peers as run

    return run(plan)


def million(plan: Plan) -> list[Result]:
    """Benchmark 7, in its own module: a million tasks (issue 16)."""
    from benchmarks.million import million as run

    return run(plan)


def million_spread(plan: Plan) -> list[Result]:
    """Benchmark 7 with each task at a second of its own: a steady ~186 fires a second."""
    from benchmarks.million import million_spread as run

    return run(plan)


def handoff(plan: Plan) -> list[Result]:
    """Benchmark 6, in its own module: hand-off to worker fleets."""
    from benchmarks.handoff import handoff as run

    return run(plan)


ALL: list[tuple[str, Callable[[Plan], list[Result]]]] = [
    ("idle", idle_scheduler),
    ("steady", steady),
    ("burst", burst),
    ("burst10k", burst_10k),
    ("startup100k", startup_100k),
    ("handoff", handoff),
    ("million", million),
    ("millionspread", million_spread),
    ("peers", peers),
]
