"""The heartbeat's queries, compiled once, give what the ORM's querysets gave, on each database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from django_tasks_sched.models import SchedulerProcess, TaskRun
from django_tasks_sched.service.compiled import HOLE, Compiled
from django_tasks_sched.service.heartbeat import Heartbeat
from tests.factories import make_task

pytestmark = pytest.mark.django_db


def _process(worker_id: str, seen_ago: float) -> SchedulerProcess:
    return SchedulerProcess.objects.create(
        worker_id=worker_id,
        hostname="h",
        pid=1,
        last_seen=timezone.now() - timedelta(seconds=seen_ago),
    )


def test_a_compiled_read_puts_each_calls_time_where_the_hole_was() -> None:
    _process("scheduler:a", seen_ago=2)
    _process("scheduler:b", seen_ago=60)
    query = Compiled.select(SchedulerProcess.objects.seen_since(HOLE).values_list("worker_id"))
    assert len(query.holes) == 1
    for seconds in (1, 10, 100):
        since = timezone.now() - timedelta(seconds=seconds)
        expected = set(SchedulerProcess.objects.seen_since(since).values_list("worker_id"))
        assert set(query.rows(since)) == expected
    assert {worker for (worker,) in query.rows(timezone.now() - timedelta(seconds=10))} == {
        "scheduler:a"
    }


def test_a_compiled_update_writes_the_time_it_is_given_and_counts_the_rows() -> None:
    _process("scheduler:a", seen_ago=60)
    rows = SchedulerProcess.objects.filter(worker_id="scheduler:a")
    beat = Compiled.update(rows, last_seen=HOLE)
    at = timezone.now().replace(microsecond=123456)
    assert beat.rowcount(at) == 1
    assert SchedulerProcess.objects.get().last_seen == at
    gone = Compiled.update(SchedulerProcess.objects.filter(worker_id="nobody"), last_seen=HOLE)
    assert gone.rowcount(at) == 0
    with pytest.raises(TypeError, match="takes a time"):
        beat.rowcount()


def test_a_compiled_query_without_a_time_takes_none() -> None:
    query = Compiled.select(TaskRun.objects.unfinished().values("pk").order_by()[:1])
    assert "ORDER BY" not in query.sql
    assert query.holes == []
    assert query.rows() == []
    run = TaskRun.objects.create(task=make_task("t"), status=TaskRun.Status.QUEUED)
    assert query.rows() == [(run.pk,)]


@pytest.mark.django_db(transaction=True)
def test_a_failed_compiled_statement_marks_its_transaction_for_rollback() -> None:
    broken = Compiled.select(SchedulerProcess.objects.all())
    broken.sql = broken.sql.replace("SELECT", "SELECT no_such_column,", 1)
    with transaction.atomic():
        _process("scheduler:a", seen_ago=0)
        with pytest.raises(DatabaseError):
            broken.rows()
        assert transaction.get_rollback()
    assert not SchedulerProcess.objects.exists()  # rolled back, as an ORM error would have


def test_the_heartbeat_beats_recreates_its_row_and_reads_its_share() -> None:
    heartbeat = Heartbeat("scheduler:me")
    heartbeat.beat()
    first = SchedulerProcess.objects.get().last_seen
    heartbeat.beat()
    assert SchedulerProcess.objects.get().last_seen >= first
    SchedulerProcess.objects.all().delete()  # pruned as stale by another process
    heartbeat.beat()
    assert SchedulerProcess.objects.get().worker_id == "scheduler:me"
    _process("scheduler:other", seen_ago=0)
    _process("scheduler:dead", seen_ago=600)
    share = heartbeat.share(within=30)
    assert share.count == 2  # the dead one is not counted
