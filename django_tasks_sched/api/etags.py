"""ETag and If-Match for tasks: two clients editing one task cannot overwrite each other."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework.request import Request

from django_tasks_sched.api.errors import PreconditionFailed
from django_tasks_sched.models import Task


def etag(task: Task) -> str:
    """A strong ETag that changes with every save of the task (``updated_at``, microseconds)."""
    stamp = int(task.updated_at.timestamp() * 1_000_000) if task.updated_at else 0
    return f'"{task.pk}-{stamp}"'


def check_if_match(request: Request, task: Task) -> None:
    """412 unless ``If-Match`` is absent, ``*``, or names the task's current ETag.

    Call with the row locked (``select_for_update``), so no save slips in between.
    """
    header = request.headers.get("If-Match")
    if header is None:
        return
    # Strong comparison (RFC 9110): a weak tag never matches.
    tags = [tag.strip() for tag in header.split(",")]
    if "*" in tags or etag(task) in tags:
        return
    raise PreconditionFailed(
        _("The task %(id)s changed since you read it (its ETag is now %(etag)s).")
        % {"id": task.name, "etag": etag(task)}
    )
