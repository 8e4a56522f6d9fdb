"""Rows for the scheduler's hot paths, without the ORM's conversion of every value.

Queries are still built by the ORM; only the per-value conversion is skipped, and done for
the values that are used. On SQLite the ORM makes each datetime aware and each 0/1 a boolean
in Python: reading 10,000 tasks took 0.11 s with those conversions and 0.04 s without.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.db import connections
from django.db.models import Field, QuerySet
from django.db.models.sql.constants import MULTI

#: Rows fetched per round trip.
CHUNK_SIZE = 2000


def raw_rows(queryset: QuerySet[Any]) -> Iterator[tuple[Any, ...]]:
    """The rows of a ``values_list()`` queryset as the database driver returns them.

    Fetched in chunks (a server-side cursor where the database has them), as ``iterator()``.
    """
    compiler = queryset.query.get_compiler(queryset.db)
    chunked = not connections[queryset.db].settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    for chunk in compiler.execute_sql(MULTI, chunked_fetch=chunked, chunk_size=CHUNK_SIZE):
        yield from chunk


def column_reader(field: Field[Any, Any], using: str) -> Callable[[Any], Any]:
    """A driver's value of ``field`` to Python, with the conversions the ORM applies."""
    connection = connections[using]
    column = field.get_col(field.model._meta.db_table)
    converters = [*connection.ops.get_db_converters(column), *column.get_db_converters(connection)]

    def read(value: Any) -> Any:
        for converter in converters:
            value = converter(value, column, connection)
        return value

    return read
