"""Firing on or off in every scheduler process at once: pause and resume the whole scheduler.

The flag lives on the change stamp's row, which every scheduler process polls anyway: each
poll reads the version and the flag in one query, so switching costs nothing while nobody
switches and is seen within the propagation bound (at once on PostgreSQL, through NOTIFY).

While firing is off a scheduler process fires nothing and starts no queued run (run-now
requests and retries wait); runs already going finish. Each process stores every task's next
fire time as it pauses. When firing comes back on it reloads the table as it does at start-up,
so the fires that came due meanwhile are handled exactly as fires missed while no scheduler
ran: within ``misfire_grace_time`` they run (or fold into one run with ``coalesce``), and a
stretch beyond it is recorded as one MISSED run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from django_tasks_sched.changes import STAMP_PK, schedule_changed
from django_tasks_sched.rawsql import take_write_lock


@dataclass(frozen=True)
class Firing:
    """Whether scheduler processes fire, and who switched that last, when."""

    on: bool
    changed_at: datetime | None = None
    changed_by: str = ""


def firing(using: str = DEFAULT_DB_ALIAS) -> Firing:
    """The firing switch as stored (on when it was never switched)."""
    from django_tasks_sched.models import ScheduleStamp

    row = ScheduleStamp.objects.using(using).filter(pk=STAMP_PK).first()
    if row is None:
        return Firing(on=True)
    return Firing(row.firing, row.firing_changed_at, row.firing_changed_by)


def switch_firing(on: bool, by: str = "", using: str = DEFAULT_DB_ALIAS) -> bool:
    """Switch firing on or off everywhere; False when it already was (nothing is written).

    ``by`` says who switched it (a user name, a script), shown in the admin and the API.
    """
    from django_tasks_sched.models import ScheduleStamp

    stamps = ScheduleStamp.objects.using(using)
    with transaction.atomic(using=using):
        # SQLite: the write lock first, or a scheduler's write between our read and our
        # update fails this at once with "database is locked".
        take_write_lock(ScheduleStamp, using)
        stamps.get_or_create(pk=STAMP_PK)
        # Guarded by the state it leaves: of two clients switching at once, one switches.
        switched = stamps.filter(pk=STAMP_PK, firing=not on).update(
            firing=on, firing_changed_at=timezone.now(), firing_changed_by=by[:150]
        )
        if switched:
            # Wakes the listening scheduler processes (the others see the flag at their poll).
            schedule_changed(using)
    return bool(switched)
