"""Many tasks for the scale benchmarks (issue 16), made fast: multi-row INSERTs, no model objects.

The mix the issue asks for: most tasks daily, some hourly, a few every minute, with crontabs
and zones varied; at a million tasks that is about 186 fires a second. ``Task.objects.
bulk_create`` builds a model object, a trigger and an audit record for each row; here one
template row holds every column's default, prepared for the database once, and each distinct
schedule's config and next fire time are prepared once too (a million tasks have 301
schedules, 90,060 with ``--spread``); PostgreSQL takes the rows by ``COPY``. The audit trail
is skipped on purpose: a benchmark's population is not a change anyone made.

    python -m benchmarks.population --db postgres --count 1000000   # prints rows/s
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import NOOP, analyze, database_url, open_fresh_database

#: Zones the tasks are spread over (daylight saving in both hemispheres, and none).
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")

#: Of every hundred tasks: how many fire every minute (the first), and how many hourly (the
#: next); the rest fire daily.
EVERY_MINUTE, HOURLY = 1, 3

#: Most parameters one INSERT carries (SQLite allows 32,766; PostgreSQL 65,535).
PARAMETERS_PER_STATEMENT = 30_000


def realistic_mix(
    count: int, prefix: str = "t", *, spread: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(name, cron trigger_config)`` for ``count`` tasks: 1 % every minute, 3 % hourly at a
    minute of their own, the rest daily at a time of their own, each in one of :data:`ZONES`.

    Five-field crontabs fire at the start of a minute, so the fires arrive as one burst a
    minute. With ``spread``, each task fires at a second of its own (APScheduler's cron keys,
    down to ``second``), so the same counts come as a steady stream of about 186 fires a
    second: the rate issue 16 names, as a team that spreads its customers' schedules has it.
    """
    for i in range(count):
        name = f"{prefix}-{i:07d}"
        share = i % 100
        if spread:
            yield name, _spread_config(i // 100, share)
            continue
        zone = ZONES[i % len(ZONES)]
        if share < EVERY_MINUTE:
            crontab = "* * * * *"
        elif share < EVERY_MINUTE + HOURLY:
            # i // 100 spreads them over all 60 minutes (i * 7 alone gives nine).
            crontab = f"{(i * 7 + i // 100) % 60} * * * *"
        else:
            crontab = f"{i * 7 % 60} {i * 13 % 24} * * *"
        yield name, {"crontab": crontab, "timezone": zone}


def fires_per_second(count: int) -> float:
    """The mix's average rate."""
    daily = 100 - EVERY_MINUTE - HOURLY
    return count / 100 * (EVERY_MINUTE / 60 + HOURLY / 3600 + daily / 86_400)


#: A prime: ``n * STRIDE % period`` visits every second of a period once before repeating.
STRIDE = 7919


def _spread_config(hundred: int, share: int) -> dict[str, Any]:
    """The cron keys of the ``share``-th task (of 100) in the ``hundred``-th hundred: each
    class's tasks go round the seconds of their period one by one, so every second of a
    minute has its every-minute tasks, and of a day its hourly and daily ones. The zone is a
    function of the second (each period is a multiple of five seconds), so a million tasks
    have about 90,000 schedules."""
    if share < EVERY_MINUTE:
        seat = (hundred * EVERY_MINUTE + share) % 60
        return {"second": seat, "timezone": ZONES[seat % len(ZONES)]}
    if share < EVERY_MINUTE + HOURLY:
        seat = (hundred * HOURLY + share - EVERY_MINUTE) * STRIDE % 3600
        fields = {"minute": seat // 60, "second": seat % 60}
    else:
        daily = 100 - EVERY_MINUTE - HOURLY
        seat = (hundred * daily + share - EVERY_MINUTE - HOURLY) * STRIDE % 86_400
        fields = {"hour": seat // 3600, "minute": seat // 60 % 60, "second": seat % 60}
    return {**fields, "timezone": ZONES[seat % len(ZONES)]}


def insert_tasks(rows: Iterable[tuple[str, dict[str, Any]]], func: str) -> int:
    """Insert cron tasks ``(name, trigger_config)`` with every other column at its default;
    returns how many. ``next_run_time`` is computed as ``Task.save()`` would."""
    from django.db import connection, transaction

    from django_tasks_sched.models import Task

    now = datetime.now().astimezone()
    template = Task(func=func, trigger=Task.Trigger.CRON, created_at=now, updated_at=now)
    fields = [f for f in Task._meta.concrete_fields if not f.primary_key]
    base = [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields]
    names = [f.attname for f in fields]
    at_name, at_config = names.index("name"), names.index("trigger_config")
    at_next = names.index("next_run_time")
    config_field = Task._meta.get_field("trigger_config")
    next_field = Task._meta.get_field("next_run_time")
    by_schedule: dict[str, tuple[Any, Any]] = {}

    def values(name: str, config: dict[str, Any]) -> list[Any]:
        key = json.dumps(config, sort_keys=True)
        if key not in by_schedule:
            template.trigger_config = config
            by_schedule[key] = (
                config_field.get_db_prep_save(config, connection),
                next_field.get_db_prep_save(template.compute_next_run_time(), connection),
            )
        row = base.copy()
        row[at_name] = name
        row[at_config], row[at_next] = by_schedule[key]
        return row

    quote = connection.ops.quote_name
    per_statement = max(1, PARAMETERS_PER_STATEMENT // len(fields))
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    columns = ", ".join(quote(str(f.column)) for f in fields)
    head = f"INSERT INTO {quote(Task._meta.db_table)} ({columns}) VALUES "
    if connection.vendor == "postgresql":
        # COPY: no statement to build and no parameters to bind, about ten times faster.
        copy_sql = f"COPY {quote(Task._meta.db_table)} ({columns}) FROM STDIN"
        count = 0
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            cursor.cursor.copy(copy_sql) as copy,
        ):
            for name, config in rows:
                copy.write_row(values(name, config))
                count += 1
        return count
    count, rows_in, params = 0, 0, []
    with transaction.atomic(), connection.cursor() as cursor:
        for name, config in rows:
            params += values(name, config)
            rows_in += 1
            if rows_in == per_statement:
                cursor.execute(head + ", ".join([one] * rows_in), params)
                count, rows_in, params = count + rows_in, 0, []
        if rows_in:
            cursor.execute(head + ", ".join([one] * rows_in), params)
            count += rows_in
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--spread", action="store_true", help="each task at a second of its own")
    args = parser.parse_args()
    url = database_url(args.db, Path(tempfile.mkdtemp(prefix="dts-population-")))
    open_fresh_database(args.db, url)
    from django_tasks_sched.models import Task

    began, inserted_from = time.monotonic(), datetime.now().astimezone()
    created = insert_tasks(realistic_mix(args.count, spread=args.spread), NOOP)
    analyze()
    took = time.monotonic() - began
    # The rows are what Task.save() would have written: valid, with its next fire time.
    # (The next fire as of the insert: a schedule's first row fixed it, within two fires.)
    for task in Task.objects.order_by("?")[:200]:
        task.full_clean()
        assert task.next_run_time in task.next_fire_times(2, after=inserted_from), task.name
    print(f"{created:,} tasks on {args.db} in {took:.1f} s ({created / took:,.0f} rows/s)")
    print(f"about {fires_per_second(created):,.0f} fires/s on average; 200 rows checked valid")


if __name__ == "__main__":
    main()
