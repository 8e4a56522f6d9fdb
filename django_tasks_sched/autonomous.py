"""Writes that other processes must see at once, even from inside the caller's transaction.

A task's function may wrap its work in ``transaction.atomic()`` and report progress or
heartbeats inside it (``current_run().update()``). Written on the function's own connection,
those would stay invisible until the commit (a stuck-run check elsewhere would see no
heartbeat), and would hold the run's row locked meanwhile. On PostgreSQL and MariaDB they are
written on a second connection of the same thread instead, in autocommit, as an "autonomous
transaction". SQLite has one writer at a time: there the write joins the caller's transaction,
and shows at its commit (docs/tasks.md says so).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper

from django_tasks_sched.models import TaskRun
from django_tasks_sched.rawsql import concrete_field, quoter

_side = threading.local()


def update_running_run(pk: int, fields: Mapping[str, Any]) -> int:
    """Set ``fields`` on run ``pk`` if it is still RUNNING; returns the rows updated (0 or 1)."""
    using = router.db_for_write(TaskRun)
    own = connections[using]
    if not own.in_atomic_block or own.vendor == "sqlite":
        return (
            TaskRun.objects.using(using)
            .filter(pk=pk, status=TaskRun.Status.RUNNING)
            .update(**fields)
        )
    side = _side_connection(using)
    q = quoter(side)
    columns = [concrete_field(TaskRun, name) for name in fields]
    sets = ", ".join(f"{q(field.column)} = %s" for field in columns)
    values = [field.get_db_prep_save(fields[field.name], side) for field in columns]
    sql = (
        f"UPDATE {q(TaskRun._meta.db_table)} SET {sets} "
        f"WHERE {q(concrete_field(TaskRun, 'id').column)} = %s "
        f"AND {q(concrete_field(TaskRun, 'status').column)} = %s"
    )
    with side.cursor() as cursor:
        cursor.execute(sql, [*values, pk, TaskRun.Status.RUNNING])
        return int(cursor.rowcount)


def close_side_connections() -> None:
    """Close this thread's second connections (at the end of a run)."""
    for side in list(getattr(_side, "connections", {}).values()):
        side.close()
    _side.connections = {}


def _side_connection(using: str) -> BaseDatabaseWrapper:
    opened: dict[str, BaseDatabaseWrapper] = getattr(_side, "connections", None) or {}
    _side.connections = opened
    if using not in opened:
        opened[using] = connections.create_connection(using)
    return opened[using]
