"""The audit trail: each change of a task, when, by whom, through what, old and new values.

Every path that changes tasks says what it is with :func:`recording` (the admin, the facade,
the REST API, ``synctasks``, the migration operations, management commands, a scheduler
process switching a task off); the innermost ``recording`` wins. Without one, a ``save()``
is recorded as "code" and a ``TaskQuerySet.update()`` as "bulk".

The hooks are in the model (``Task.save()``, ``Task.delete()``) and its queryset (``update()``,
``switch_off()``, ``delete()``, ``bulk_create()``): each reads the old values of the audited
columns it is about to write, in one query, and writes its ``TaskChange`` rows in the same
transaction as the change, so a rolled-back change leaves no record. ``update_quietly()``
(the scheduler's bookkeeping) and raw SQL are not recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from django.db import connections, models, transaction

from django_tasks_sched.rawsql import concrete_field, take_write_lock

if TYPE_CHECKING:
    from django_tasks_sched.models import Task, TaskChange

#: Bookkeeping columns: written by the scheduler or by Django itself, never audited.
NOT_AUDITED = frozenset(
    {
        "id",
        "next_run_time",
        "last_run_at",
        "last_run_status",
        "last_success_at",
        "consecutive_failures",
        "created_at",
        "updated_at",
        # The change's own "at" says when; paused_by (who) and inactive_reason (why) are kept.
        "paused_at",
    }
)

#: Most characters of one value's JSON kept in a record (a 1 MB kwargs is not copied whole).
VALUE_LIMIT = 1000

#: The key that marks a value cut to :data:`VALUE_LIMIT`: ``{TRUNCATED: prefix, "length": n}``.
TRUNCATED = "$truncated"

#: Rows per INSERT when many records are written at once.
BATCH_SIZE = 500

#: Longest ``who`` a record keeps (the column's length).
WHO_LIMIT = 150


@dataclass(frozen=True)
class Context:
    """The path a change comes through, and who made it (a callable: known only later)."""

    via: str
    who: str | Callable[[], str] = ""

    def person(self) -> str:
        """Who, as stored: text that fits the column (a name is not the caller's mistake)."""
        from django_tasks_sched.models import _who

        try:
            who = self.who() if callable(self.who) else self.who
        except Exception:
            # An audit record must never fail the change it records.
            who = ""
        return _who(who or "")[:WHO_LIMIT]


_current: ContextVar[Context | None] = ContextVar("django_tasks_sched_audit", default=None)


@contextmanager
def recording(via: str, who: str | Callable[[], str] = "") -> Iterator[Context]:
    """Record the task changes made inside as made through ``via`` by ``who``.

    ``via`` is a :class:`~django_tasks_sched.models.TaskChange.Via` value; ``who`` a user
    name, or a callable returning one when a change is recorded (a request's user is known
    only once it is authenticated). Nested, the innermost wins.
    """
    context = Context(via, who)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def current(default_via: str) -> Context:
    """The :func:`recording` in force, else ``default_via`` with nobody known; its ``who``
    resolved to the text stored (once: a bulk write stores it in every record)."""
    context = _current.get() or Context(default_via)
    return Context(context.via, context.person())


@cache
def audited_fields() -> tuple[str, ...]:
    """The Task columns a change is recorded for: all but :data:`NOT_AUDITED`, so a new
    field is audited unless it is added there."""
    from django_tasks_sched.models import Task

    return tuple(
        field.name for field in Task._meta.concrete_fields if field.name not in NOT_AUDITED
    )


# -- values -----------------------------------------------------------------------------------


def storable(value: Any) -> Any:
    """``value`` as JSON a record holds: dates as ISO 8601, at most :data:`VALUE_LIMIT`
    characters (longer: a prefix marked with :data:`TRUNCATED`)."""
    # The common case first: bulk_create of 10,000 tasks stores some 400,000 values.
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str) and len(value) <= VALUE_LIMIT:
        return value
    text = json.dumps(value, default=_json_default, ensure_ascii=False, sort_keys=True)
    if len(text) <= VALUE_LIMIT:
        return json.loads(text)
    return {TRUNCATED: text[:VALUE_LIMIT], "length": len(text)}


def truncated(value: Any) -> tuple[str, int] | None:
    """The prefix and full length of a value :func:`storable` cut, else None.

    Only the marker's exact shape counts: a task's own argument that happens to use the key
    (``{"$truncated": 5}``) is a value like any other.
    """
    if (
        isinstance(value, dict)
        and set(value) == {TRUNCATED, "length"}
        and isinstance(value[TRUNCATED], str)
        and isinstance(value["length"], int)
    ):
        return value[TRUNCATED], value["length"]
    return None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    return repr(value)


@cache
def _defaults() -> dict[str, Any]:
    """Each audited field's default (callable defaults such as ``dict`` called once)."""

    return {name: _field(name).get_default() for name in audited_fields()}


def _field(name: str) -> models.Field[Any, Any]:
    from django_tasks_sched.models import Task

    return concrete_field(Task, name)


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for the fields of ``new`` whose stored form changed."""
    out: dict[str, list[Any]] = {}
    for name, value in new.items():
        if old.get(name) == value:
            continue  # the common case, without serialising the value twice
        before, after = storable(old.get(name)), storable(value)
        if before != after:
            out[name] = [before, after]
    return out


def _non_default(
    values: Mapping[str, Any], *, created: bool, names: Iterable[str] | None = None
) -> dict[str, list[Any]]:
    """A created or deleted task's values that differ from the model's defaults (with those
    the task can be recreated), as ``[None, value]`` or ``[value, None]``."""
    defaults = _defaults()
    out: dict[str, list[Any]] = {}
    for name in audited_fields() if names is None else names:
        value = values.get(name)
        if name == "name" or value != defaults[name]:
            value = storable(value)
            out[name] = [None, value] if created else [value, None]
    return out


def _row(task: Task) -> dict[str, Any]:
    return {name: getattr(task, name) for name in audited_fields()}


def _record(
    task_id: int | None, name: str, action: str, fields: dict[str, list[Any]], context: Context
) -> TaskChange:
    from django_tasks_sched.models import TaskChange

    return TaskChange(
        task_id=task_id,
        task_name=name[:200],
        action=action,
        via=context.via,
        who=str(context.who),  # resolved by current()
        fields=fields,
    )


def _write(records: list[TaskChange], using: str) -> None:
    from django_tasks_sched.models import TaskChange

    if len(records) == 1:
        records[0].save(using=using, force_insert=True)  # cheaper than a bulk INSERT of one
    elif records:
        TaskChange.objects.using(using).bulk_create(records, batch_size=BATCH_SIZE)


# -- the hooks (called by the model and its queryset) -----------------------------------------


def is_audited(names: Iterable[str] | None) -> bool:
    """Whether writing the columns ``names`` (None: all of them) may need a record."""
    return names is None or not set(audited_fields()).isdisjoint(names)


@contextmanager
def writing(using: str) -> Iterator[None]:
    """The transaction of a recorded change: its record is written in it, or rolled back with it.

    On SQLite the write lock is taken first. The old values are read before the write, and a
    deferred SQLite transaction that reads, then writes, fails at once ("database is locked")
    when another process wrote in between, instead of waiting for the lock.
    """
    from django_tasks_sched.models import Task

    with transaction.atomic(using=using, savepoint=False):
        take_write_lock(Task, using)
        yield


def old_values(
    task: Task, update_fields: Iterable[str] | None, using: str, *, force_insert: Any = False
) -> dict[str, Any] | None:
    """Before ``task.save()``: the stored values of the audited columns it writes, in one
    query; None for a new row."""
    if task.pk is None or force_insert:
        return None
    names = tuple(
        name for name in audited_fields() if update_fields is None or name in update_fields
    )
    sql, readers = _select_by_pk(names, using)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [task.pk])
        row = cursor.fetchone()
    if row is None:
        return None
    return {name: read(value) for name, read, value in zip(names, readers, row, strict=True)}


@cache
def _select_by_pk(names: tuple[str, ...], using: str) -> tuple[str, list[Callable[[Any], Any]]]:
    """The SQL that reads ``names`` of one task by pk, and the ORM's conversion of each.

    Built by the ORM once per column set: building the query is most of a small SELECT's
    cost, and a save() pays it on every call.
    """
    from django_tasks_sched.models import Task
    from django_tasks_sched.service.rawrows import column_reader

    # FOR UPDATE (where there is one): the row cannot change between this read and the save.
    rows = Task._base_manager.using(using).select_for_update().filter(pk=0).order_by()
    query = rows.values_list(*names).query
    sql, params = query.get_compiler(using).as_sql()
    assert list(params) == [0], params  # the pk is the only parameter
    return sql, [column_reader(_field(name), using) for name in names]


def after_save(task: Task, old: dict[str, Any] | None, using: str) -> None:
    """After ``task.save()``: record it created, or changed in the fields that changed."""
    from django_tasks_sched.models import TaskChange

    context = current(TaskChange.Via.CODE)
    if old is None:
        record = _record(
            task.pk,
            task.name,
            TaskChange.Action.CREATED,
            _non_default(_row(task), created=True),
            context,
        )
    else:
        fields = _differences(old, {name: getattr(task, name) for name in old})
        if not fields:
            return
        record = _record(task.pk, task.name, TaskChange.Action.CHANGED, fields, context)
    _write([record], using)


def before_update(queryset: models.QuerySet[Any], values: Mapping[str, Any]) -> Callable[[], None]:
    """Before ``TaskQuerySet.update(**values)``: read the rows' old values; returns what
    records the change once the UPDATE ran (nothing to do when no audited column moves)."""
    from django_tasks_sched.models import TaskChange

    names = [name for name in audited_fields() if name in values]
    if not names:
        return _nothing
    using = queryset.db
    rows = list(_locked(queryset).values("pk", "name", *names))
    if not rows:
        return _nothing
    computed = [name for name in names if hasattr(values[name], "resolve_expression")]

    def record() -> None:
        context = current(TaskChange.Via.BULK)
        new = {name: values[name] for name in names if name not in computed}
        after: dict[int, dict[str, Any]] = {}
        if computed:
            # F() and friends: the database computed the new values; read them back.
            model = queryset.model
            for start in range(0, len(rows), BATCH_SIZE):
                chunk = [row["pk"] for row in rows[start : start + BATCH_SIZE]]
                for row in (
                    model._base_manager.using(using).filter(pk__in=chunk).values("pk", *computed)
                ):
                    after[row.pop("pk")] = row
        records = []
        for row in rows:
            fields = _differences(row, {**new, **after.get(row["pk"], {})})
            if fields:
                records.append(
                    _record(row["pk"], row["name"], TaskChange.Action.CHANGED, fields, context)
                )
        _write(records, using)

    return record


def before_delete(queryset: models.QuerySet[Any]) -> Callable[[], None]:
    """Before deleting ``queryset``'s tasks: read their last values; returns what records
    them deleted (their records stay, with ``task`` NULL and the name kept)."""
    from django_tasks_sched.models import TaskChange

    using = queryset.db
    rows = list(_locked(queryset).values("pk", *audited_fields()))

    def record() -> None:
        context = current(TaskChange.Via.CODE)
        _write(
            [
                _record(
                    None,
                    row["name"],
                    TaskChange.Action.DELETED,
                    _non_default(row, created=False),
                    context,
                )
                for row in rows
            ],
            using,
        )

    return record


def after_bulk_create(tasks: list[Task], existed: Mapping[str, dict[str, Any]], using: str) -> None:
    """After ``bulk_create``: one "created" record per new task, in batched INSERTs.

    ``existed``: the rows of the same names before (``ignore_conflicts`` skips them,
    ``update_conflicts`` changes them), keyed by name, with their old values.
    """
    from django_tasks_sched.models import Task, TaskChange

    context = current(TaskChange.Via.BULK)
    missing = [task.name for task in tasks if task.pk is None]
    ids: dict[str, int] = {}
    for start in range(0, len(missing), BATCH_SIZE):
        # Backends that return no ids from a bulk INSERT (MySQL), or conflicts ignored.
        names = missing[start : start + BATCH_SIZE]
        ids.update(Task._base_manager.using(using).filter(name__in=names).values_list("name", "pk"))
    records = []
    for task in tasks:
        pk = task.pk or ids.get(task.name)
        if task.name not in existed:
            fields = _non_default(_row(task), created=True)
            records.append(_record(pk, task.name, TaskChange.Action.CREATED, fields, context))
        elif existed[task.name]:
            old = existed[task.name]
            fields = _differences(old, {name: getattr(task, name) for name in old})
            if fields:
                records.append(_record(pk, task.name, TaskChange.Action.CHANGED, fields, context))
    _write(records, using)


def existing_rows(
    tasks: list[Task], update_fields: Iterable[str] | None, using: str
) -> dict[str, dict[str, Any]]:
    """Before a ``bulk_create`` that may meet existing names: those rows, with the old values
    of the audited ``update_fields`` (``{}`` each when conflicts are only ignored)."""
    from django_tasks_sched.models import Task

    names = [name for name in audited_fields() if name in set(update_fields or ())]
    found: dict[str, dict[str, Any]] = {}
    all_names = [task.name for task in tasks]
    for start in range(0, len(all_names), BATCH_SIZE):
        chunk = all_names[start : start + BATCH_SIZE]
        for row in Task._base_manager.using(using).filter(name__in=chunk).values("name", *names):
            found[row.pop("name")] = row
    return found


def _nothing() -> None:
    pass


def _locked(queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
    """``queryset``'s rows locked until the change commits, in primary-key order.

    Locked, the values read are the ones the UPDATE or DELETE changes: a row another process
    changed meanwhile (two schedulers switching one task off) is read after its change, or no
    longer matches. In pk order, as the scheduler's claims lock tasks. SQLite has no row locks:
    its write lock is already held (:func:`writing`).
    """
    queryset = queryset.order_by("pk")
    if queryset.query.distinct:
        return queryset  # FOR UPDATE is refused with DISTINCT; the write itself still locks
    connection = connections[queryset.db]
    if connection.features.has_select_for_update_of:
        return queryset.select_for_update(of=("self",))
    return queryset.select_for_update()


# -- the migration operations (historical models run no save() logic) ---------------------------


def record_in_migration(apps: Any, using: str, action: str, rows: list[dict[str, Any]]) -> None:
    """Record ``rows`` (``pk``, ``name`` and values) created or deleted by a migration
    operation, through the historical ``TaskChange`` of ``apps``' state."""
    from django_tasks_sched.models import TaskChange

    try:
        model = apps.get_model(TaskChange._meta.app_label, "TaskChange")
    except LookupError:
        return  # a state before the audit trail existed: there is no table to record in
    known = {
        field.name for field in apps.get_model(TaskChange._meta.app_label, "Task")._meta.fields
    }
    names = [name for name in audited_fields() if name in known]
    created = action == TaskChange.Action.CREATED
    person = str(current(TaskChange.Via.MIGRATION).who)
    model._default_manager.using(using).bulk_create(
        [
            model(
                task_id=row["pk"] if created else None,
                task_name=row["name"][:200],
                action=action,
                via=TaskChange.Via.MIGRATION,
                who=person,
                fields=_non_default(row, created=created, names=names),
            )
            for row in rows
        ],
        batch_size=BATCH_SIZE,
    )
