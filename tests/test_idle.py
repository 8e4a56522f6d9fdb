"""An idle scheduler stays cheap and still hears of the first change or run at once.

Its heartbeat housekeeping is one read while no run is queued or running; its stamp poll reuses
one cursor across reconnects, and on SQLite makes no query while the database's files stand
still; on PostgreSQL its LISTEN thread sleeps until a notification.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks_sched.changes import bump
from django_tasks_sched.models import SchedulerProcess, Task, TaskRun
from django_tasks_sched.service import listen
from django_tasks_sched.service.listen import Listener, StampReader
from django_tasks_sched.service.runner import SchedulerService
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def far_off(name: str) -> Task:
    return Task.objects.create(
        name=name,
        func="tests.testapp.jobs:noop",
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
    )


def test_idle_housekeeping_is_one_read_of_the_runs(service: SchedulerService) -> None:
    far_off("someday")
    with CaptureQueriesContext(connection) as queries:
        service.housekeep()
    run_queries = [q["sql"] for q in queries.captured_queries if "taskrun" in q["sql"]]
    assert len(run_queries) == 1, run_queries  # "is any run queued or running?"


def test_the_full_pass_prunes_dead_processes_and_keeps_live_ones(
    service: SchedulerService,
) -> None:
    long_ago = timezone.now() - timedelta(hours=1)
    SchedulerProcess.objects.create(
        worker_id="scheduler:gone:1:abc", hostname="gone", pid=1, started_at=long_ago,
        last_seen=long_ago,
    )  # fmt: skip
    service.full_pass()
    alive = set(SchedulerProcess.objects.values_list("worker_id", flat=True))
    assert alive == {service.worker_id}


def test_housekeeping_starts_a_queued_run_once_there_is_one(service: SchedulerService) -> None:
    task = far_off("by-hand")
    run = TaskRun.objects.create(task=task, origin=TaskRun.Origin.MANUAL)
    service.housekeep()
    run.wait(timeout=10)
    assert run.status == TaskRun.Status.SUCCESSFUL
    assert run.worker_id == service.worker_id


def test_the_stamp_poll_reads_every_change_across_a_reconnect() -> None:
    read = StampReader()
    first = read().version
    bump()
    assert read().version == first + 1
    connection.close()  # what the loop's close_old_connections() does under CONN_MAX_AGE = 0
    bump()
    assert read().version == first + 2


def test_on_sqlite_a_poll_makes_no_query_while_the_files_stand_still(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the look at the files is SQLite's")
    monkeypatch.setattr(listen, "FORCED_READ", 3600.0)  # only the files can call for a read
    monkeypatch.setattr(listen, "SETTLING", 0.0)  # files just written count as settled
    read = StampReader()
    read()  # in WAL mode, SQLite creates the log file on a connection's first read
    first = read()
    statements: list[str] = []
    connection.connection.set_trace_callback(statements.append)  # what SQLite executes
    try:
        assert read() == first
    finally:
        connection.connection.set_trace_callback(None)
    assert statements == []
    monkeypatch.setattr(listen, "SETTLING", 1.0)
    bump()  # a commit writes the files
    assert read().version == first.version + 1


@pytest.fixture
def listener() -> Iterator[tuple[Listener, threading.Event]]:
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    wake = threading.Event()
    listener = Listener(wake)
    listener.start()
    assert listener.listening.wait(10)
    assert wake.wait(10)  # set on connecting, right after listening
    yield listener, wake
    listener.stop()
    assert not listener.is_alive()


#: This test database's LISTEN connections (not another suite's).
_LISTENING = "datname = current_database() AND query LIKE 'LISTEN %%' AND pid <> pg_backend_pid()"


def _kill_listen_connections() -> int:
    """End the LISTEN connections to this test database (not another suite's)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {_LISTENING}")
        return len(cursor.fetchall())


def test_a_notification_wakes_the_listener(listener: tuple[Listener, threading.Event]) -> None:
    _, wake = listener
    wake.clear()
    bump()
    assert wake.wait(10)  # nothing but a notification sets it


def test_a_listener_whose_connection_is_killed_listens_again(
    listener: tuple[Listener, threading.Event],
) -> None:
    thread, wake = listener
    assert _kill_listen_connections() >= 1  # (a stopped scheduler's may not have closed yet)
    wait_until(lambda: not thread.listening.is_set())  # the loop polls at its own pace meanwhile
    wake.clear()
    assert thread.listening.wait(10)
    assert wake.wait(10)  # set on connecting again
    wake.clear()
    bump()
    assert wake.wait(10)


def test_a_stop_ends_the_wait_and_closes_the_listen_connection() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    listener = Listener(threading.Event())
    listener.start()
    assert listener.listening.wait(10)
    started = time.monotonic()
    listener.stop(timeout=listen.LISTEN_WAIT)
    assert not listener.is_alive()
    assert time.monotonic() - started < listen.LISTEN_WAIT / 3  # not the wait's end
    assert not listener.listening.is_set()
    wait_until(lambda: _listen_connections() == 0)


def _listen_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {_LISTENING}")
        return int(cursor.fetchone()[0])


def test_a_listener_asking_the_server_between_waits_still_wakes(
    listener: tuple[Listener, threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    thread, wake = listener
    # Each wait times out at once: every pass asks the server (SELECT 1) before it looks.
    monkeypatch.setattr(listen, "LISTEN_WAIT", 0.01)
    bump()  # ends the current (long) wait; later waits are short
    assert wake.wait(10)
    for _ in range(5):
        wake.clear()
        bump()
        assert wake.wait(10)
    assert thread.listening.is_set()
