"""Queries compiled once: the small reads and writes an idle scheduler makes at each heartbeat.

Building a queryset and compiling it to SQL cost several times the database's own work for
these one-row queries (about 400 of the 500 µs of CPU each took on PostgreSQL), and they were
the bulk of an idle scheduler's CPU time. A :class:`Compiled` query is built once; each call
only executes its SQL, with the time it is given where :data:`HOLE` stood.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from django.db import connections, router, transaction
from django.db.models import QuerySet
from django.db.models.sql import UpdateQuery

#: A time no caller uses: where it lands in a compiled query's parameters, each call's time goes.
HOLE = datetime(1971, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)


class Compiled:
    """One query's SQL and parameters for one database, with the positions of its time."""

    def __init__(self, sql: str, params: tuple[Any, ...], using: str) -> None:
        self.sql = sql
        self.params = params
        self.using = using
        hole = connections[using].ops.adapt_datetimefield_value(HOLE)
        self.holes = [i for i, param in enumerate(params) if param == hole]

    @classmethod
    def select(cls, queryset: QuerySet[Any, Any]) -> Compiled:
        """The query that iterating ``queryset`` runs (rows come back raw, unconverted)."""
        using = queryset.db
        sql, params = queryset.query.get_compiler(using).as_sql()
        return cls(sql, tuple(params), using)

    @classmethod
    def update(cls, queryset: QuerySet[Any, Any], **values: Any) -> Compiled:
        """The UPDATE that ``queryset.update(**values)`` runs for a plain queryset of one
        model's rows: plain values (no expressions), no parent tables of multi-table
        inheritance (their rows would be a second statement)."""
        # As QuerySet.update() picks it: the queryset's own database, else the router's
        # for writes (``queryset.db`` is the one for reads).
        using = getattr(queryset, "_db", None) or router.db_for_write(queryset.model)
        query = cast(UpdateQuery, queryset.query.chain(UpdateQuery))
        query.add_update_values(values)
        sql, params = query.get_compiler(using).as_sql()
        return cls(sql, tuple(params), using)

    def rows(self, at: datetime | None = None) -> list[tuple[Any, ...]]:
        """Run the query with ``at`` in the place of HOLE; its rows."""
        with self._cursor(at) as cursor:
            return list(cursor.fetchall())

    def rowcount(self, at: datetime | None = None) -> int:
        """Run the statement with ``at`` in the place of HOLE; how many rows it matched."""
        with self._cursor(at) as cursor:
            return int(cursor.rowcount)

    def _cursor(self, at: datetime | None) -> Any:
        params: tuple[Any, ...] | list[Any] = self.params
        if self.holes:
            if at is None:
                raise TypeError("this query takes a time")
            value = connections[self.using].ops.adapt_datetimefield_value(at)
            params = list(params)
            for index in self.holes:
                params[index] = value
        # As the ORM does: an error inside a transaction marks it for rollback.
        with transaction.mark_for_rollback_on_error(self.using):
            cursor = connections[self.using].cursor()
            try:
                cursor.execute(self.sql, params)
            except BaseException:
                cursor.close()
                raise
        return cursor
