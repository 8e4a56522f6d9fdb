"""The database goes away under a running scheduler: it stays up, reconnects, catches up.

On PostgreSQL and MariaDB the real server is stopped and started again (pg_ctlcluster,
mysqladmin shutdown and scripts/services.sh), as root, as CI runs. On SQLite, which has no
server, another connection holds the write lock until the scheduler's writes fail with
"database is locked".
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from django.db import connection

from django_tasks_sched.models import Task, TaskRun
from tests.history import fire_gaps
from tests.processes import ROOT, wait_until
from tests.processes import SchedulerProcess as Proc

pytestmark = pytest.mark.django_db(transaction=True)

needs_a_server = pytest.mark.skipif(
    connection.vendor not in ("postgresql", "mysql"),
    reason="needs a database server to restart (PostgreSQL or MariaDB)",
)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="restarting the server needs root")

OUTAGE = 4.0  # seconds the server stays down


def stop_server() -> None:
    if connection.vendor == "postgresql":
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop"]
        subprocess.run([*command, "-m", "fast"], check=True)
    else:
        admin = shutil.which("mariadb-admin") or "mysqladmin"
        subprocess.run([admin, "-h", "127.0.0.1", "-u", "root", "shutdown"], check=True)
        # mysqladmin returns before the port is closed.
        wait_until(
            lambda: (
                subprocess.run(
                    [admin, "-h", "127.0.0.1", "-u", "root", "ping"], capture_output=True
                ).returncode
                != 0
            ),
            30,
        )


def start_server() -> None:
    service = "postgres" if connection.vendor == "postgresql" else "mariadb"
    subprocess.run([str(ROOT / "scripts" / "services.sh"), service], check=True)


#: Each outage test runs with the defaults (coalesce on, max_instances 1), where the fires of
#: the outage fold into one run, and with every fire run (coalesce off, room for all).
OPTIONS = {
    "defaults": {},
    "every-fire": {"coalesce": False, "max_instances": 10},
}


@pytest.fixture(params=list(OPTIONS))
def options(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def every_second(options: str) -> Task:
    return Task.objects.create(
        name="steady",
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"seconds": 1},
        **OPTIONS[options],
    )


@needs_a_server
@needs_root
def test_scheduler_survives_a_server_restart_and_catches_up(tmp_path: Path, options: str) -> None:
    task = every_second(options)
    proc = Proc(tmp_path / "s.log")
    try:
        proc.wait_ready()
        wait_until(lambda: task.runs.count() >= 2, 10, proc)
        connection.close()
        stop_server()
        try:
            time.sleep(OUTAGE)
            assert proc.proc.poll() is None, "the scheduler exited while the server was down"
        finally:
            start_server()
        connection.close()  # the test's own connection died with the server
        # Finished, not only claimed: the backlog is claimed in one go, and a stop that lands
        # before its last run started would rightly record that one CANCELLED (not started).
        count = task.runs.count()
        wait_until(lambda: finished(task) >= count + 3, 30, proc)
        assert proc.proc.poll() is None
    finally:
        code = proc.stop()
    assert_caught_up(task, proc, code, options)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own lock")
def test_scheduler_survives_database_is_locked_and_catches_up(tmp_path: Path, options: str) -> None:
    task = every_second(options)
    # Writers give up after half a second of waiting for the lock, not the usual twenty.
    proc = Proc(tmp_path / "s.log", env={"DTS_TEST_SQLITE_TIMEOUT": "0.5"})
    try:
        proc.wait_ready()
        wait_until(lambda: task.runs.count() >= 2, 10, proc)
        # Another connection takes the write lock and keeps it: every claim, outcome and
        # heartbeat of the scheduler fails with "database is locked" meanwhile.
        holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            time.sleep(OUTAGE)
            assert proc.proc.poll() is None, "the scheduler exited while the database was locked"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        # Finished, not only claimed: the backlog is claimed in one go, and a stop that lands
        # before its last run started would rightly record that one CANCELLED (not started).
        count = task.runs.count()
        wait_until(lambda: finished(task) >= count + 3, 30, proc)
    finally:
        code = proc.stop()
    assert "database is locked" in proc.output()
    assert_caught_up(task, proc, code, options)


def finished(task: Task) -> int:
    return task.runs.filter(status__in=TaskRun.FINISHED_STATUSES).count()


#: What the stop records for a fire it claimed but no thread had started yet.
CUT_AT_THE_STOP = "Not started: the scheduler shut down"


def before_the_stop(task: Task) -> list[TaskRun]:
    """The task's runs, less the last fire if the stop cut it before its function started.

    A task due every second always has a fire near the stop: on a loaded machine its claim
    can commit before a pool thread picks it up, and the stop then rightly records it
    CANCELLED (not started). Only the last fire may end so.
    """
    runs = list(task.runs.order_by("scheduled_for"))
    last = runs[-1] if runs else None
    if last and last.status == TaskRun.Status.CANCELLED and last.error.startswith(CUT_AT_THE_STOP):
        runs.pop()
    return runs


def assert_caught_up(task: Task, proc: Proc, code: int, options: str) -> None:
    # The runs first, then the log: a failure shows which fire ended how.
    runs = task.runs.order_by("scheduled_for").values_list("scheduled_for", "status", "error")
    log = "\n".join(f"{at} {status} {error[:80]}" for at, status, error in runs)
    log += "\n" + proc.output()
    assert code == 0, log
    # Every fire of the outage has its record after it (each within the misfire grace time).
    gaps = fire_gaps(task.runs.all())
    assert gaps == {1.0}, (gaps, log)
    statuses = {run.status for run in before_the_stop(task)}
    if options == "every-fire":
        assert statuses == {"SUCCESSFUL"}, log
    else:
        # The fires of the outage folded into one run, as the docs say: recorded as coalesced,
        # not as max_instances. (The next fire on time may still find that run going, and be
        # skipped for max_instances 1 as any fire would: at most that one.)
        assert statuses == {"SUCCESSFUL", "MISSED"}, log
        missed = list(task.runs.filter(status="MISSED").values_list("error", flat=True))
        coalesced = [error for error in missed if error.startswith("Coalesced: ")]
        assert len(coalesced) >= 2, missed
        assert len(missed) - len(coalesced) <= 1, missed
        assert all("max_instances" in error for error in missed if error not in coalesced)
    # The outage was logged as such, not as a crash.
    assert "retrying" in log, log


def test_a_deadlock_is_told_from_other_database_errors() -> None:
    from django.db import OperationalError

    from django_tasks_sched.rawsql import is_deadlock

    class PgError(Exception):
        sqlstate = "40P01"

    def wrapped(cause: BaseException) -> OperationalError:
        error = OperationalError(str(cause))
        error.__cause__ = cause
        return error

    assert is_deadlock(wrapped(Exception(1213, "Deadlock found when trying to get lock")))
    assert is_deadlock(wrapped(PgError("deadlock detected")))
    assert not is_deadlock(wrapped(Exception(2006, "MySQL server has gone away")))
    assert not is_deadlock(OperationalError("database is locked"))
