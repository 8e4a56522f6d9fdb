"""Benchmark 7: a million tasks on PostgreSQL (100,000 on SQLite), in issue 16's mix.

1 % of the tasks fire every minute, 3 % hourly, the rest daily, over five zones (see
:mod:`benchmarks.population`): about 186 fires a second at a million. One scheduler process,
on its defaults (a ten-minute window).

- ``million``: five-field crontabs, so the fires arrive as a burst of about 10,000 at the
  start of each minute. Rows: how fast the tasks are made, start-up and memory, fire lateness
  over whole minutes, change propagation with the table that size, and two schedulers.
- ``millionspread``: the same counts, each task at a second of its own, so the fires come as
  the steady stream the issue's "≈ 200 fires/s" describes. Rows: fire lateness, for one
  scheduler and for two.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from benchmarks.cases import Plan, _check_clean, _flag_errors, _lateness_row, _runs_between
from benchmarks.cases import propagation as propagation_rows
from benchmarks.harness import NOOP, UTC, Result, Scheduler, analyze, reset_tables, wait_until_idle
from benchmarks.population import insert_tasks, realistic_mix

#: Tasks per database: PostgreSQL is the target; SQLite is for a single small machine.
COUNTS = {"postgres": 1_000_000, "sqlite": 100_000}


def expected_fires(count: int, start: float, end: float, *, spread: bool = False) -> int:
    """How many fires the mix has in [start, end): per distinct schedule, not per task."""
    from django_tasks_sched.triggers import build_trigger, next_fire_times

    tasks_per_schedule: dict[str, int] = {}
    for _, config in realistic_mix(count, spread=spread):
        key = json.dumps(config, sort_keys=True)
        tasks_per_schedule[key] = tasks_per_schedule.get(key, 0) + 1
    opens = datetime.fromtimestamp(start, UTC) - timedelta(microseconds=1)
    closes = datetime.fromtimestamp(end, UTC)
    total = 0
    for key, tasks in tasks_per_schedule.items():
        trigger = build_trigger("cron", json.loads(key))
        fires = next_fire_times(trigger, count=10, after=opens)
        total += tasks * sum(1 for when in fires if when < closes)
    return total


def million(plan: Plan) -> list[Result]:
    count = COUNTS[plan.db]
    label = f"{count:,}"
    reset_tables()
    began = time.monotonic()
    insert_tasks(realistic_mix(count), NOOP)
    analyze()
    made = time.monotonic() - began
    results = [
        Result(
            f"7. making {label} tasks (COPY / multi-row INSERT, then ANALYZE)",
            plan.db,
            f"{made:.1f} s ({count / made:,.0f} rows/s)",
            "bulk, batched",
            True,
            {"seconds": made},
        )
    ]
    scheduler = Scheduler(plan.log("million"))
    ready = scheduler.wait_ready()
    assert scheduler.ready_wall is not None
    wall = scheduler.ready_wall
    time.sleep(3)  # the first loop passes, and the first fires' allocations
    rss, peak = scheduler.memory_mb()
    results += [
        Result(
            f"7. start-up until ready, {label} tasks",
            plan.db,
            f"{wall:.2f} s (loading the window {ready:.2f} s)",
            "≤ 5 s",
            wall <= 5.0,
            {"wall": wall, "ready": ready},
        ),
        Result(
            f"7. resident memory, {label} tasks",
            plan.db,
            f"{rss:.0f} MB (peak {peak:.0f} MB)",
            "≤ 300 MB",
            rss <= 300.0,
            {"rss": rss, "peak": peak},
        ),
    ]
    # Whole minutes: each holds one burst of the every-minute tasks.
    minutes = whole_minutes([scheduler], 1 if plan.quick else 3)
    results.append(lateness(plan, minutes, count))
    for row in propagation_rows(plan, scheduler):
        row.benchmark = row.benchmark.replace("1. change", "7. change", 1) + f", {label} tasks"
        results.append(row)
    results += two_schedulers(plan, scheduler, count, minutes.cpu[0])
    scheduler.stop()
    return _flag_errors(results, _check_clean(scheduler, "million"))


def million_spread(plan: Plan) -> list[Result]:
    """The mix with each task at a second of its own: lateness in a steady stream of fires."""
    count = COUNTS[plan.db]
    reset_tables()
    insert_tasks(realistic_mix(count, spread=True), NOOP)
    analyze()
    scheduler = Scheduler(plan.log("million-spread"))
    scheduler.wait_ready()
    time.sleep(3)  # the first loop passes, and the first fires' allocations
    minutes = whole_minutes([scheduler], 1 if plan.quick else 3)
    results = [lateness(plan, minutes, count, spread=True)]
    results += two_schedulers(plan, scheduler, count, minutes.cpu[0], spread=True)
    scheduler.stop()
    return _flag_errors(results, _check_clean(scheduler, "million, spread"))


@dataclass
class Minutes:
    """Whole minutes measured: their span (epoch seconds), and each scheduler's CPU over them
    in % of a core."""

    start: float
    end: float
    cpu: list[float]


def whole_minutes(schedulers: list[Scheduler], count: int) -> Minutes:
    """Let ``count`` whole minutes pass, from the next one's start, and wait for their runs."""
    start = math.ceil(time.time() / 60 + 0.05) * 60
    end = start + count * 60
    time.sleep(max(0.0, start - time.time()))
    before = [proc.cpu_seconds() for proc in schedulers]
    began = time.monotonic()
    time.sleep(max(0.0, end - time.time()))
    took = time.monotonic() - began
    cpu = [
        (proc.cpu_seconds() - was) / took * 100
        for proc, was in zip(schedulers, before, strict=True)
    ]
    time.sleep(5)
    wait_until_idle()
    return Minutes(start, end, cpu)


def lateness(plan: Plan, minutes: Minutes, count: int, *, spread: bool = False) -> Result:
    """The fire lateness row of ``minutes``, against every fire the mix has in them."""
    expected = expected_fires(count, minutes.start, minutes.end, spread=spread)
    how = ", spread" if spread else ""
    span = round((minutes.end - minutes.start) / 60)
    if len(minutes.cpu) == 1:
        who, extra = "", f"; scheduler CPU {minutes.cpu[0]:.0f} %"
    else:
        who = "two schedulers, "
        extra = "; CPU " + " + ".join(f"{share:.0f} %" for share in minutes.cpu)
    return _lateness_row(
        f"7. fire lateness{how}, {who}{count:,} tasks over {span} min (p99, {expected:,} fires)",
        plan,
        _runs_between(minutes.start, minutes.end),
        expected,
        0.100,
        extra,
    )


def two_schedulers(
    plan: Plan, first: Scheduler, count: int, alone: float, *, spread: bool = False
) -> list[Result]:
    """A second replica: the two share the window (each claims its own part of the fires),
    and the lateness and what each costs. The minute measured begins once the first process
    has taken its part (at its next heartbeat)."""
    name = "million-second-spread" if spread else "million-second"
    second = Scheduler(plan.log(name))
    second.wait_ready()
    deadline = time.monotonic() + 60
    while "now holds part" not in first.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    minutes = whole_minutes([first, second], 1)
    second.stop()  # before the expected fires are counted: that takes a core for a while
    errors = _check_clean(second, "million, second scheduler" + (", spread" if spread else ""))
    row = lateness(plan, minutes, count, spread=spread)
    row.measured += f" (one alone: {alone:.0f} %)"
    return _flag_errors([row], errors)
