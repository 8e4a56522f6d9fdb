"""Connection upkeep of the scheduler's long-lived threads (under the default CONN_MAX_AGE = 0).

Outside a test transaction: ``close_old_connections`` closes a connection whose autocommit
differs from the settings', which is every connection inside one.
"""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection

from django_tasks_sched.models import Task
from django_tasks_sched.upkeep import ConnectionUpkeep

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
