"""Tell scheduler processes that the Task table (or the run queue) changed.

Signals are a wake-up, not the reconcile: they fire only in the saving process, and
``QuerySet.update()``, ``bulk_create`` and data migrations send none. So every path that
changes tasks ends in :func:`schedule_changed`, which, once the transaction commits, moves the
single ``ScheduleStamp`` row's version (every scheduler polls it cheaply) and, on PostgreSQL,
sends a ``NOTIFY`` that wakes a listening scheduler at once. Scheduler processes still
reconcile on a slow timer that trusts nothing, for raw SQL.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connections, transaction
from django.db.models import F
from django.utils import timezone

logger = logging.getLogger(__name__)

#: The PostgreSQL channel a scheduler LISTENs on.
NOTIFY_CHANNEL = "django_tasks_sched"
STAMP_PK = 1


def schedule_changed(using: str = DEFAULT_DB_ALIAS) -> None:
    """Bump the change stamp when the current transaction commits (at once in autocommit)."""
    connection = connections[using]
    # One bump per transaction is enough, however many rows it touched: deleting 10,000
    # tasks sends 10,000 post_delete signals.
    pending = getattr(connection, "run_on_commit", None) or []
    if any(entry[1] is _bump_callbacks[using] for entry in pending if len(entry) > 1):
        return
    transaction.on_commit(_bump_callbacks[using], using=using)


def current_version(using: str = DEFAULT_DB_ALIAS) -> int:
    """The stamp's version now (0 before any change)."""
    from django_tasks_sched.models import ScheduleStamp

    row = ScheduleStamp.objects.using(using).filter(pk=STAMP_PK).values_list("version", flat=True)
    return next(iter(row), 0)


def ensure_stamp(using: str = DEFAULT_DB_ALIAS) -> None:
    """Create the stamp's row if it is not there yet (a row to lock, see ``Heartbeat.join``)."""
    from django_tasks_sched.models import ScheduleStamp

    try:
        with transaction.atomic(using=using):
            ScheduleStamp.objects.using(using).get_or_create(pk=STAMP_PK)
    except IntegrityError:
        pass  # another process created it meanwhile


def bump(using: str = DEFAULT_DB_ALIAS) -> None:
    """Move the stamp forward now and notify listeners; never raises into the caller."""
    from django_tasks_sched.models import ScheduleStamp

    try:
        stamps = ScheduleStamp.objects.using(using)
        if not stamps.filter(pk=STAMP_PK).update(
            version=F("version") + 1, changed_at=timezone.now()
        ):
            try:
                with transaction.atomic(using=using):
                    stamps.create(pk=STAMP_PK, version=1)
            except IntegrityError:
                # Another process created the row between our UPDATE and INSERT.
                stamps.filter(pk=STAMP_PK).update(version=F("version") + 1)
        connection = connections[using]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])
    except DatabaseError:
        # The change itself is committed; a scheduler's slow full reconcile will still see
        # it. Failing the caller's request over a missed wake-up would be worse.
        logger.warning("Could not bump the schedule change stamp", exc_info=True)


class _Bump:
    """A per-alias callable with a stable identity, so pending bumps can be recognised."""

    def __init__(self, using: str) -> None:
        self.using = using

    def __call__(self) -> None:
        bump(self.using)


class _BumpCallbacks(dict[str, _Bump]):
    def __missing__(self, using: str) -> _Bump:
        self[using] = _Bump(using)
        return self[using]


_bump_callbacks = _BumpCallbacks()


def on_task_saved_or_deleted(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    """post_save / post_delete receiver for Task."""
    schedule_changed(using)


def on_run_queued(sender: Any, instance: Any, created: bool, using: str, **kwargs: Any) -> None:
    """post_save receiver for TaskRun: a new QUEUED run should start as fast as a change."""
    if created and instance.status == "QUEUED":
        schedule_changed(using)


def on_post_migrate(sender: Any, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """Data migrations write tasks without signals: bump once migrate is done."""
    from django_tasks_sched.models import ScheduleStamp

    if ScheduleStamp._meta.db_table in connections[using].introspection.table_names():
        bump(using)
