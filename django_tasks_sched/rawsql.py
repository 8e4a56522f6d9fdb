"""Raw SQL for the hot paths: lock rows in key order, and update many rows in few statements.

A busy scheduler records thousands of runs a second; ``save()`` and ``QuerySet.update()`` per
row cost more than the runs. These helpers keep the SQL in one place, quoted and typed as the
ORM would, and lock rows in primary-key order everywhere, so two processes writing the same
rows cannot deadlock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.db import connections
from django.db.models import Field, JSONField, Model

#: SQLSTATEs of a transaction the database ended to break a deadlock or a serialization
#: conflict (PostgreSQL), and MySQL/MariaDB's error number for a deadlock.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
MYSQL_DEADLOCK = 1213


def is_deadlock(exc: BaseException) -> bool:
    """Whether the database rolled our transaction back to break a deadlock: safe to retry.

    This app locks its own rows in one order everywhere, but another writer may not (Django's
    cascade deletes a task's runs before the task, the opposite order of recording an
    outcome): the database then picks one of the two, and the loser tries again.
    """
    cause = exc.__cause__ or exc
    state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if state in RETRYABLE_SQLSTATES:
        return True
    args: tuple[Any, ...] = tuple(getattr(cause, "args", ()))
    return bool(args) and args[0] == MYSQL_DEADLOCK


def quoter(connection: Any) -> Callable[[str | None], str]:
    """``connection.ops.quote_name`` for column names, which django-stubs 6 types as optional."""

    def quote(name: str | None) -> str:
        assert name is not None, "a concrete field has a column"
        return str(connection.ops.quote_name(name))

    return quote


def concrete_field(model: type[Model], name: str) -> Field[Any, Any]:
    """The model's field ``name``, which has a column."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def lock_rows(model: type[Model], keys: Sequence[Any], using: str, **equal: Any) -> set[Any]:
    """Lock rows in primary-key order, as claims lock tasks; call it inside a transaction.

    Two scheduler processes writing the same rows in different orders could deadlock. Every
    row found is locked; returns the keys found, only those whose fields have the values in
    ``equal`` if any are given (``status=…``, ``active=…``: read in the locking statement).
    SQLite has no row locks: it takes the database's write lock instead
    (:func:`take_write_lock`).
    """
    connection = connections[using]
    can_lock = connection.features.has_select_for_update
    if not keys:
        return set()
    if not can_lock:
        take_write_lock(model, using)
        if not equal:
            return set(keys)
    table, key = connection.ops.quote_name(model._meta.db_table), column(model, "id", using)
    # Selected, not filtered on: PostgreSQL's FOR UPDATE locks only the rows a filter keeps.
    matches, values = _equal(model, equal, connection)
    lock = f" {connection.ops.for_update_sql()}" if can_lock else ""
    ordered, found = sorted(keys), set[Any]()
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), UPDATE_CHUNK_SIZE):
            chunk = ordered[start : start + UPDATE_CHUNK_SIZE]
            keyed, params = among(connection, key, concrete_field(model, "id"), chunk)
            cursor.execute(
                f"SELECT {key}, {matches} FROM {table} WHERE {keyed} ORDER BY {key}{lock}",
                [*values, *params],
            )
            found.update(row[0] for row in cursor.fetchall() if row[1])
    return found


def exists_among(
    model: type[Model], name: str, keys: Sequence[Any], using: str, **equal: Any
) -> bool:
    """Whether a row of ``model`` has its field ``name`` among ``keys`` and the values in
    ``equal``: the ORM's ``filter(name__in=keys, **equal).exists()``, with the keys as one
    parameter on PostgreSQL (see :func:`among`)."""
    if not keys:
        return False
    connection = connections[using]
    field = concrete_field(model, name)
    keyed, params = among(connection, column(model, name, using), field, keys)
    matches, values = _equal(model, equal, connection)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {table} WHERE {keyed} AND {matches} LIMIT 1", [*params, *values]
        )
        return cursor.fetchone() is not None


def _equal(model: type[Model], equal: dict[str, Any], connection: Any) -> tuple[str, list[Any]]:
    """``(column = %s AND …)`` for the fields in ``equal`` (``(1 = 1)`` for none), and the
    values prepared as the ORM would prepare them."""
    fields = {name: concrete_field(model, name) for name in equal}
    tests = [f"{connection.ops.quote_name(f.column)} = %s" for f in fields.values()]
    sql = f"({' AND '.join(tests or ['1 = 1'])})"
    values = [field.get_db_prep_value(equal[name], connection) for name, field in fields.items()]
    return sql, values


def take_write_lock(model: type[Model], using: str) -> None:
    """On SQLite, take the database's write lock now, at the start of the transaction.

    SQLite has no row locks and Django opens transactions DEFERRED: a read first takes a shared
    lock, and two readers that both want to write then deadlock (one gets "database is locked"
    at once, without waiting). A write that matches no row takes the write lock before we read,
    waiting for it as any write does. Elsewhere, rows are locked as they are read.
    """
    connection = connections[using]
    if connection.vendor == "sqlite":
        table, key = connection.ops.quote_name(model._meta.db_table), column(model, "id", using)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET {key} = {key} WHERE 1 = 0")


def update_rows(
    model: type[Model],
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    using: str,
    *,
    locked: bool = False,
) -> None:
    """Set fields ``names`` of many rows, each to its own values: ``rows`` are ``[pk, *values]``.

    The rows are locked in primary-key order first (see :func:`lock_rows`) unless ``locked``
    says the caller did. Call it inside a transaction.
    """
    if not rows:
        return
    connection = connections[using]
    quote = quoter(connection)
    pk, fields = concrete_field(model, "id"), [concrete_field(model, name) for name in names]
    table, key = quote(model._meta.db_table), quote(pk.column)
    ordered = sorted(rows, key=lambda row: row[0])
    if not locked:
        lock_rows(model, [row[0] for row in ordered], using)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            sets = ", ".join(f"{quote(field.column)} = %s" for field in fields)
            prepared = [
                [*(f.get_db_prep_save(v, connection) for f, v in zip(fields, row, strict=True)), k]
                for k, *row in ordered
            ]
            cursor.executemany(f"UPDATE {table} SET {sets} WHERE {key} = %s", prepared)
            return
        # PostgreSQL: one UPDATE joined to the rows as arrays is planned once (as many
        # single-row UPDATEs took three times as long), and its few parameters cost psycopg
        # little to parse and send (a VALUES list had one per value: a fifth of the time).
        for start in range(0, len(ordered), UPDATE_CHUNK_SIZE):
            chunk = ordered[start : start + UPDATE_CHUNK_SIZE]
            keys, *columns = ([*values] for values in zip(*chunk, strict=True))
            batch = Unnest(connection)
            joined = batch.column(pk, keys, key, array=True)
            assignments = [
                f"{quote(field.column)} = {batch.column(field, column, quote(field.column))}"
                for field, column in zip(fields, columns, strict=True)
            ]
            # No parameter after the FROM: Unnest's order holds (see Unnest.params).
            cursor.execute(
                f"UPDATE {table} AS t SET {', '.join(assignments)}{batch.from_sql()} "
                f"WHERE t.{key} = {joined}",
                batch.params(),
            )


class Unnest:
    """Many rows' values for one PostgreSQL statement, column by column: a column the rows
    agree on is one parameter, each other column an array, joined as ``FROM unnest(…)``.

    A burst's rows differ in a few columns (the task; the times of their outcomes): the rest
    cost one value each, not one per row to prepare, send and (for psycopg, which caches only
    short queries) parse again. Parameters come in the order :meth:`params` gives them: the
    columns' SQL before the ``FROM``, as in ``INSERT … SELECT`` and ``UPDATE … SET``.
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.shared: list[Any] = []
        self.arrays: list[list[Any]] = []
        self.types: list[str] = []
        self.aliases: list[str] = []

    def column(
        self, field: Field[Any, Any], values: list[Any], alias: str, *, array: bool = False
    ) -> str:
        """SQL for ``field``'s value in each row (``values``, one per row, not yet prepared for
        the database); ``array`` for a column that must be one (a join's key)."""
        if not values:
            raise ValueError("no rows")
        prep = field.get_db_prep_save
        if not array and _all_alike(field, values):
            self.shared.append(prep(values[0], self.connection))
            return f"CAST(%s AS {plain_type(field, self.connection)})"
        self.arrays.append([prep(value, self.connection) for value in values])
        self.types.append(f"CAST(%s AS {array_type(field, self.connection)})")
        self.aliases.append(alias)
        return f"v.{alias}"

    def from_sql(self) -> str:
        """`` FROM unnest(…) AS v(…)``, or nothing if every column is one value."""
        if not self.arrays:
            return ""
        return f" FROM unnest({', '.join(self.types)}) AS v({', '.join(self.aliases)})"

    def params(self) -> list[Any]:
        return [*self.shared, *self.arrays]


def _all_alike(field: Field[Any, Any], values: list[Any]) -> bool:
    """Whether every value would be stored as the first is: ``==`` alone is not enough
    (``True == 1``, ``{"a": 1.0} == {"a": 1}``, and two datetimes of one zone compare equal
    across a change of clocks, whatever their ``fold``)."""
    first = values[0]
    if isinstance(field, JSONField):
        # Compared as stored: the encoded text (each value is encoded for the write anyway).
        text = json.dumps(first, cls=field.encoder)
        return all(json.dumps(value, cls=field.encoder) == text for value in values)
    kind = type(first)
    if isinstance(first, datetime):
        offset = first.utcoffset()
        return all(
            type(value) is kind and value == first and value.utcoffset() == offset
            for value in values
        )
    return all(type(value) is kind and value == first for value in values)


#: Rows per statement of :func:`lock_rows` and :func:`update_rows` (PostgreSQL).
UPDATE_CHUNK_SIZE = 1000


def among(
    connection: Any, column: str, field: Field[Any, Any], values: Sequence[Any]
) -> tuple[str, list[Any]]:
    """SQL for ``column`` (quoted) being one of ``values``, and its parameters.

    On PostgreSQL one array: psycopg parses a query with hundreds of placeholders again each
    time (it caches only short ones), which cost a claim of 500 fires more than its locks.
    Elsewhere an ``IN`` list.
    """
    if connection.vendor == "postgresql":
        return f"{column} = ANY(CAST(%s AS {array_type(field, connection)}))", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def plain_type(field: Field[Any, Any], connection: Any) -> str:
    """The type of ``field``'s column without a length (``varchar``), to cast a parameter to:
    a cast to ``varchar(16)`` would cut a longer value silently, where the column refuses it.
    Only the length goes (``timestamp(3) with time zone`` keeps its zone)."""
    return _LENGTH.sub("", str(field.db_type(connection)))


#: A type's length or precision: ``(16)``, ``(10, 2)``.
_LENGTH = re.compile(r"\(\s*\d+\s*(?:,\s*\d+\s*)?\)")


def array_type(field: Field[Any, Any], connection: Any) -> str:
    """PostgreSQL's array of :func:`plain_type`."""
    return f"{plain_type(field, connection)}[]"


def column(model: type[Model], name: str, using: str) -> str:
    """The quoted column name of ``model``'s field ``name``."""
    return quoter(connections[using])(concrete_field(model, name).column)
