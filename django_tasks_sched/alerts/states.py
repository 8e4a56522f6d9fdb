"""The one way an alert changes state: a guarded flip that exactly one process wins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction

from django_tasks_sched.models import AlertState

#: Most characters of an alert's detail (a run's error can be megabytes).
DETAIL_LIMIT = 1000


@dataclass(frozen=True)
class Change:
    """One alert whose state a process has just flipped: it, and only it, sends the message."""

    state: AlertState
    raised: bool


def bounded(text: str, limit: int = DETAIL_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def flip(
    task_id: int | None, kind: str, raised: bool, at: datetime, detail: str = ""
) -> Change | None:
    """Set the alert to ``raised`` as of ``at``; the Change if this call made the change.

    A guarded UPDATE (``WHERE raised = <old> AND changed_at <= at``): of several processes
    flipping the same alert only one matches, and evidence older than the last change (a
    process that read the runs before another saw a newer outcome) cannot undo it. The row
    is created on the first raise; two processes creating it race on the unique constraint,
    and the loser sends nothing.
    (The key, not the task and kind: see ``AlertState.key``.)
    """
    rows = AlertState.objects.filter(key=AlertState.key_for(task_id, kind))
    detail = bounded(detail)
    if rows.filter(raised=not raised, changed_at__lte=at).update(
        raised=raised, changed_at=at, detail=detail
    ):
        return Change(rows.select_related("task").get(), raised)
    if not raised or rows.exists():
        return None
    try:
        with transaction.atomic():
            state = AlertState.objects.create(
                task_id=task_id, kind=kind, raised=True, changed_at=at, detail=detail
            )
    except IntegrityError:
        return None  # another process created it (and sends), or the task was just deleted
    return Change(AlertState.objects.select_related("task").get(pk=state.pk), True)
