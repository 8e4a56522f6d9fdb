"""Fault-injection soak: several runscheduler processes, repeatedly killed with SIGKILL.

    .venv/bin/python scripts/soak.py                          # SQLite, 3 schedulers, 2 minutes
    .venv/bin/python scripts/soak.py --db postgres --duration 300
    .venv/bin/python scripts/soak.py --mode all               # kill every scheduler at once
    .venv/bin/python scripts/soak.py --kill-every 0           # no kills: schedulers sharing work

Tasks fire every second and append a line to a trace file each time they really execute, so
the count is taken outside the database. ``--mode rolling`` kills one scheduler at a time (the
others carry on); ``--mode all`` kills them all and restarts them, which leans on the misfire
policy at start. At the end it prints, for the measured window: fires due, fires recorded,
fires lost (due but no row), duplicate executions (trace lines beyond started runs), and the
MISSED / INTERRUPTED counts. Results go in docs/reliability.md. Not part of CI: the short
versions are tests/test_many_schedulers.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
URLS = {
    "postgres": "postgres://postgres@127.0.0.1:5432/dts_soak",
    "mysql": "mysql://root@127.0.0.1:3306/dts_soak",
}
# Dead schedulers are noticed within a few seconds, as a production setting might choose.
SCHEDULER_SETTINGS = {"HEARTBEAT_INTERVAL": 1, "HEARTBEAT_TIMEOUT": 5}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "mysql"], default="sqlite")
    parser.add_argument("--schedulers", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--duration", type=float, default=120, help="seconds of killing")
    parser.add_argument("--kill-every", type=float, default=10, help="seconds; 0: no kills")
    parser.add_argument("--mode", choices=["rolling", "all"], default="rolling")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="dts-soak-"))
    os.environ["DTS_TEST_SQLITE"] = str(workdir / "soak.sqlite3")
    if args.db != "sqlite":
        os.environ["DATABASE_URL"] = URLS[args.db]
        recreate(args.db)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    sys.path.insert(0, str(ROOT))

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    from django_tasks_sched.models import Task

    trace = workdir / "trace.txt"
    Task.objects.bulk_create(
        Task(
            name=f"soak-{i:03d}",
            func="tests.testapp.jobs:append_line",
            args=[str(trace), f"soak-{i:03d}"],
            trigger="interval",
            trigger_config={"seconds": 1},
        )
        for i in range(args.tasks)
    )
    procs = [spawn(workdir, n) for n in range(args.schedulers)]
    began = time.time()
    kills = 0
    print(f"soak: {args.db}, {args.schedulers} schedulers, {args.tasks} tasks, logs in {workdir}")
    if args.kill_every <= 0:  # no faults: several schedulers sharing the work, for a while
        time.sleep(args.duration)
    while args.kill_every > 0 and time.time() - began < args.duration:
        time.sleep(args.kill_every)
        victims = list(range(len(procs))) if args.mode == "all" else [random.randrange(len(procs))]
        for n in victims:
            procs[n].send_signal(signal.SIGKILL)
            procs[n].wait()
            kills += 1
        time.sleep(1)
        for n in victims:
            procs[n] = spawn(workdir, n, generation=kills)
    ended = time.time()
    time.sleep(3)  # let the last fires of the window be recorded
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    codes = [proc.wait(timeout=60) for proc in procs]
    report(args, trace, began + 5, ended - 2, kills, codes)
    return 0


def recreate(db: str) -> None:
    if db == "postgres":
        subprocess.run(
            ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", "dts_soak"],
            check=True,
        )
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", "dts_soak"], check=True)
    else:
        sql = "DROP DATABASE IF EXISTS dts_soak; CREATE DATABASE dts_soak CHARACTER SET utf8mb4;"
        subprocess.run(["mysql", "-h", "127.0.0.1", "-u", "root", "-e", sql], check=True)


def spawn(workdir: Path, n: int, generation: int = 0) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DTS_TEST_TASKS_SCHED": json.dumps(SCHEDULER_SETTINGS),
    }
    log = open(workdir / f"scheduler-{n}-{generation}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "django", "runscheduler", "--log-level", "WARNING"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def report(
    args: argparse.Namespace, trace: Path, start: float, end: float, kills: int, codes: list[int]
) -> None:
    from django.db.models import Count, Q

    from django_tasks_sched.models import Task, TaskRun

    window_start = datetime.fromtimestamp(start, tz=UTC)
    window_end = datetime.fromtimestamp(end, tz=UTC)
    due = recorded = 0
    for task in Task.objects.all():
        anchor = task.created_at.replace(microsecond=0)  # interval fires anchor on created_at
        first = math.ceil((window_start - anchor).total_seconds())
        last = math.floor((window_end - anchor).total_seconds())
        due += max(0, last - first + 1)
        recorded += (
            task.runs.filter(
                scheduled_for__gte=anchor + timedelta(seconds=first),
                scheduled_for__lte=anchor + timedelta(seconds=last),
            )
            .values("scheduled_for")
            .distinct()
            .count()
        )
    executed = Counter(trace.read_text().splitlines()) if trace.exists() else Counter()
    started = dict(
        Task.objects.annotate(
            n=Count("runs", filter=Q(runs__started_at__isnull=False))
        ).values_list("name", "n")
    )
    duplicates = sum(max(0, executed[name] - count) for name, count in started.items())
    statuses = Counter(TaskRun.objects.values_list("status", flat=True))
    rows = [
        ("database", args.db),
        ("mode", f"{args.mode}, kill -9 every {args.kill_every:g} s" if kills else "no kills"),
        ("schedulers / tasks", f"{args.schedulers} / {args.tasks} (every 1 s)"),
        ("duration", f"{args.duration:g} s, {kills} kill(s)"),
        ("fires due in window", f"{due:,}"),
        ("fires recorded", f"{recorded:,}"),
        ("fires lost", f"{due - recorded:,}"),
        ("duplicate executions", f"{duplicates:,}"),
        ("runs by status", ", ".join(f"{k} {v:,}" for k, v in sorted(statuses.items()))),
        ("exit codes at SIGTERM", ", ".join(map(str, codes))),
    ]
    width = max(len(key) for key, _ in rows)
    print()
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")


if __name__ == "__main__":
    sys.exit(main())
