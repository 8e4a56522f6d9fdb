"""Sharing the window between scheduler processes: each loads its own part of the tasks.

Every live scheduler process (a fresh ``SchedulerProcess`` row) holds the tasks whose bucket
falls in its part: with ``n`` processes sorted by ``worker_id``, the ``k``-th holds the
buckets ``b`` with ``b * n // SPREAD == k``. So a burst is claimed by every process at once,
each its own fires, instead of by all of them for every fire, serialised on the tasks' row
locks (docs/window.md measures it: twice as fast with two processes).

The bucket is a multiplicative hash of the primary key, computed the same way in SQL (to load
a part through the window's index) and in Python (to drop a row read by id): consecutive ids,
and ids in a stride (every sixtieth task due each minute), spread over every part alike. It
depends on the id modulo ``REDUCE`` only, so only strides of millions could unbalance it.

Views of who is live can differ for a moment (each process reads them at its heartbeat). Two
processes holding the same task is harmless: the claim keeps each fire once. A task nobody
holds for a moment is caught up from its stored ``next_run_time`` by the process that takes
it, as at start-up; a process is counted live a heartbeat less long than it counts as alive
for its runs, so a dead process's part is taken over within ``HEARTBEAT_TIMEOUT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, cast

from django.db.models import BigIntegerField, ExpressionWrapper, F, Model, QuerySet
from django.db.models.functions import Abs

#: Buckets: a part is a range of them, so the SQL needs no division (MySQL's ``/`` is decimal).
SPREAD = 1 << 32
#: ``SPREAD`` over the golden ratio: Fibonacci hashing spreads any arithmetic run of ids.
MULTIPLIER = 2654435769
#: The id is reduced first, so the product stays inside a 64-bit integer for every id.
REDUCE = 1 << 24

M = TypeVar("M", bound=Model)


def bucket(pk: int) -> int:
    """The bucket of a primary key, as :meth:`Share.filter` computes it in SQL."""
    return (abs(pk) % REDUCE) * MULTIPLIER % SPREAD


@dataclass(frozen=True)
class Share:
    """The ``index``-th of ``count`` parts of the tasks; ``count == 1`` holds all of them."""

    index: int = 0
    count: int = 1

    @property
    def whole(self) -> bool:
        return self.count <= 1

    def bounds(self) -> tuple[int, int]:
        """The buckets held: ``low <= bucket < high``."""
        return -(-self.index * SPREAD // self.count), -(-(self.index + 1) * SPREAD // self.count)

    def holds(self, pk: int) -> bool:
        if self.whole:
            return True
        low, high = self.bounds()
        return low <= bucket(pk) < high

    def filter(self, queryset: QuerySet[M]) -> QuerySet[M]:
        """Only the rows of this part (all of them for the whole)."""
        if self.whole:
            return queryset
        low, high = self.bounds()
        # Reduced before ABS: abs() of the smallest bigint (raw SQL can force one) overflows.
        # SQL's % keeps the dividend's sign, so this is |pk| % REDUCE, as bucket() computes.
        # Typed 64-bit: as a plain integer (PostgreSQL's range), a bound past 2^31 would be
        # dropped by Django as out of range, and the filter would hold every row.
        hashed = ExpressionWrapper(
            Abs(F("pk") % REDUCE) * MULTIPLIER % SPREAD, output_field=BigIntegerField()
        )
        part = queryset.alias(dts_bucket=hashed).filter(dts_bucket__gte=low, dts_bucket__lt=high)
        return cast("QuerySet[M]", part)  # some django-stubs lose the model type on alias()

    def __str__(self) -> str:
        return "all tasks" if self.whole else f"part {self.index + 1} of {self.count}"


#: One process, or sharing switched off: every task.
WHOLE = Share()


def share_of(worker_id: str, live: list[str]) -> Share:
    """This process's part among the ``live`` processes' ids (the whole if it is not among
    them: its own row is missing for a moment, and holding too much only costs claims)."""
    members = sorted(set(live))
    if worker_id not in members:
        return WHOLE
    return Share(members.index(worker_id), len(members))
