"""Connection upkeep of the scheduler's long-lived threads (under the default CONN_MAX_AGE = 0).

Outside a test transaction: ``close_old_connections`` closes a connection whose autocommit
differs from the settings', which is every connection inside one.
"""

from __future__ import annotations

import threading

import pytest
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.utils import timezone

from django_tasks_sched.liveness import Liveness
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.upkeep import ConnectionUpkeep
from tests.factories import make_task
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_connection_is_kept_until_an_upkeep_is_due() -> None:
    assert connection.settings_dict["CONN_MAX_AGE"] == 0
    clock = Clock()
    upkeep = ConnectionUpkeep(60.0, clock)
    Task.objects.exists()
    opened = connection.connection
    assert opened is not None
    clock.now = 59.0
    upkeep()
    assert connection.connection is opened
    clock.now = 60.0
    upkeep()
    assert connection.connection is None  # the next query opens a new one
    Task.objects.exists()
    clock.now = 119.0
    upkeep()
    assert connection.connection is not None  # the next upkeep is due a minute later


def test_a_failed_query_is_looked_after_at_the_next_call() -> None:
    upkeep = ConnectionUpkeep(60.0, Clock())
    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM dts_no_such_table")
    assert connection.errors_occurred
    upkeep()
    assert not connection.errors_occurred
    assert connection.connection is None


def test_the_liveness_thread_keeps_its_connection_while_runs_run_and_holds_none_after() -> None:
    """Its loop run here, so this thread's connection is the one it uses."""
    task = make_task("alive")
    run = TaskRun.objects.create(
        task=task, status=TaskRun.Status.RUNNING, started_at=timezone.now(), worker_id="here"
    )
    beats = Liveness(0.01)
    beats.add(run.pk)
    own = connections[DEFAULT_DB_ALIAS]  # this thread's
    connection.close()
    seen: list[str] = []

    def watch() -> None:
        try:
            stamped = TaskRun.objects.filter(pk=run.pk, alive_at__isnull=False)
            wait_until(stamped.exists)
            first, stamp = own.connection, stamped.get().alive_at
            wait_until(stamped.filter(alive_at__gt=stamp).exists)  # the next beat
            seen.append("kept" if own.connection is first is not None else "reconnected")
            beats.discard(run.pk)
            wait_until(lambda: own.connection is None)
            seen.append("closed")
        finally:
            beats._stop_event.set()
            connections.close_all()

    watcher = threading.Thread(target=watch)
    watcher.start()
    beats.run()
    watcher.join()
    assert seen == ["kept", "closed"]
