"""What every benchmark needs: the database, real scheduler processes, tasks, statistics."""

from __future__ import annotations

import atexit
import math
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = "benchmarks.settings"
NOOP = "benchmarks.jobs:noop"
UTC = timezone.utc

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/dts_bench"


@dataclass
class Result:
    """One row of the table."""

    benchmark: str
    database: str
    measured: str
    target: str
    met: bool
    details: dict[str, Any] = field(default_factory=dict)


# -- statistics ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


# -- the database ----------------------------------------------------------------------------------


def database_url(db: str, workdir: Path) -> str:
    if db == "sqlite":
        return f"sqlite:///{workdir / 'bench.sqlite3'}"
    return os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def recreate_database(db: str, url: str) -> None:
    """A fresh, empty database for one benchmark run (call before Django connects)."""
    if db == "sqlite":
        path = Path(urlsplit(url).path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name.startswith("test_"):
        raise SystemExit(f"refusing to recreate database {name!r}: give a benchmark database")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def open_fresh_database(db: str, url: str) -> None:
    """Drop and create the benchmark database at ``url``, point Django at it and migrate:
    the start of every benchmark process (call before anything touches Django)."""
    import django
    from django.core.management import call_command

    recreate_database(db, url)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    django.setup()
    call_command("migrate", verbosity=0)


def reset_tables() -> None:
    """Empty the app's tables between benchmarks (no scheduler may be running)."""
    from django.db import connection

    from django_tasks_sched.models import AlertState, SchedulerProcess, Task, TaskChange, TaskRun

    # Every table with a foreign key to Task first: PostgreSQL truncates none without them.
    models = (TaskRun, TaskChange, AlertState, Task, SchedulerProcess)
    tables = [m._meta.db_table for m in models]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)}")
            cursor.execute("VACUUM ANALYZE")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")  # our own table names


def analyze() -> None:
    """Fresh planner statistics after a bulk load, as autovacuum would give soon after."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def create_tasks(rows: Iterable[dict[str, Any]], batch: int = 2000) -> int:
    """Insert tasks through ``Task.objects.bulk_create`` (which computes ``next_run_time``)."""
    from django_tasks_sched.models import Task

    count = 0
    chunk: list[Task] = []
    for row in rows:
        chunk.append(Task(**{"func": NOOP, **row}))
        if len(chunk) >= batch:
            count += len(Task.objects.bulk_create(chunk))
            chunk = []
    if chunk:
        count += len(Task.objects.bulk_create(chunk))
    analyze()
    return count


def far_away_tasks(count: int, prefix: str) -> Iterable[dict[str, Any]]:
    """A realistic mix (interval, crontab, date) whose next fire is weeks away at the least."""
    start = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    for i in range(count):
        kind = i % 3
        if kind == 0:
            first = (start + timedelta(seconds=i)).isoformat()
            config: dict[str, Any] = {"days": 7, "start_date": first}
            trigger = "interval"
        elif kind == 1:
            month = (datetime.now(UTC).month + 5) % 12 + 1  # at least four months away
            config = {"crontab": f"{i % 60} {i // 60 % 24} 1 {month} *"}
            trigger = "cron"
        else:
            config = {"run_date": f"2099-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}"}
            trigger = "date"
        yield {"name": f"{prefix}-{i:06d}", "trigger": trigger, "trigger_config": config}


def iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).isoformat()


def timestamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


# -- scheduler processes ---------------------------------------------------------------------------

_READY = re.compile(r"ready in ([0-9.]+)s")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the benchmark process dies (Linux), however it dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Scheduler:
    """A real ``manage.py runscheduler`` subprocess on the benchmark settings.

    A scheduler left running by a benchmark that crashed would reconnect to the next run's
    database (same name) and claim half of its fires: each is stopped when the benchmark
    process exits, and told to stop if it dies.
    """

    live: set[Scheduler] = set()

    def __init__(
        self,
        log_path: Path,
        *args: str,
        command: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        """``command``: another program than ``manage.py runscheduler`` (a fleet's worker);
        ``env``: more environment variables for it."""
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115  (closed in stop())
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, *(command or ["-m", "django", "runscheduler"]), *args],
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        Scheduler.live.add(self)
        #: The scheduler's own "ready in" figure, and the wall time from spawn to that line.
        self.ready_in: float | None = None
        self.ready_wall: float | None = None

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _READY.search(self.output())
            if match:
                self.ready_wall = time.monotonic() - self.spawned
                self.ready_in = float(match.group(1))
                return self.ready_in
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(f"scheduler exited with {code}:\n{self.output()}")
            time.sleep(0.01)
        raise RuntimeError(f"scheduler not ready within {timeout}s:\n{self.output()}")

    def memory_mb(self) -> tuple[float, float]:
        """(resident now, peak resident) in MiB, from /proc."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
        return int(values["VmRSS"]) / 1024, int(values["VmHWM"]) / 1024

    def cpu_seconds(self) -> float:
        """utime + stime of the process (all threads) so far."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def stop(self, timeout: float = 90) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        Scheduler.live.discard(self)
        return code

    @classmethod
    def stop_all(cls) -> None:
        """Stop every scheduler still running (at exit, after a benchmark failed)."""
        for scheduler in list(cls.live):
            scheduler.stop(timeout=10)

    def errors(self) -> list[str]:
        """Log lines at ERROR or with a traceback: a benchmark that errors is not a result."""
        return [
            line
            for line in self.output().splitlines()
            if " ERROR " in line or line.startswith("Traceback")
        ]


atexit.register(Scheduler.stop_all)


def wait_until_idle(timeout: float = 120) -> None:
    """Wait until no run is RUNNING (a scheduler finishing a burst)."""
    from django_tasks_sched.models import TaskRun

    deadline = time.monotonic() + timeout
    while TaskRun.objects.running().exists() and time.monotonic() < deadline:
        time.sleep(0.2)


# -- machine notes ---------------------------------------------------------------------------------


def machine_notes(db: str, load_at_start: tuple[float, float, float]) -> dict[str, str]:
    """The machine, the versions, and the load average (1, 5, 15 min) at start and at end."""
    import django
    from django.db import connection

    meminfo = Path("/proc/meminfo").read_text()
    total_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    if db == "sqlite":
        server = f"SQLite {sqlite3.sqlite_version}"
    else:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            server = f"PostgreSQL {cursor.fetchone()[0]}"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{os.cpu_count()} cores ({_cpu_model()})",
        "ram": f"{total_kb / 1024 / 1024:.0f} GiB",
        "load": " ".join(f"{x:.2f}" for x in load_at_start)
        + " at start, "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + " at end",
        "python": platform.python_version(),
        "django": django.get_version(),
        "apscheduler": _version("APScheduler"),
        "driver": _version("psycopg") if db != "sqlite" else f"sqlite3 {sqlite3.sqlite_version}",
        "database": server,
        "os": platform.platform(),
    }


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{distribution} {version(distribution)}"
    except PackageNotFoundError:
        return f"{distribution} (unknown version)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
