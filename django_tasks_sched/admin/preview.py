"""The schedule editor's live preview: what the Task form would say, before anything is saved.

One endpoint the add and change pages call while the user types. It builds the very form the
admin would build for that page (read-only fields of a declared task, the run-permission guard,
the unique-name check against the task being edited) and answers with its verdict as JSON.
Validation is the form's own: a callable the security policy refuses is refused before it is
imported, here as on save.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.utils.translation import gettext

from django_tasks_sched import bounds
from django_tasks_sched.admin.display import display_zone
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.models import Task
from django_tasks_sched.times import time_text

if TYPE_CHECKING:
    from django_tasks_sched.admin.task import TaskAdmin

logger = logging.getLogger(__name__)

#: Fire times a preview lists.
PREVIEW_FIRES = 5
#: The largest request the preview reads: three JSON boxes at their limit and the other fields.
MAX_BODY = 3 * bounds.MAX_JSON_BYTES + 16 * 1024
#: The form field naming the task being edited (absent on the add page).
OBJECT_ID = "_dts_object_id"
SCHEDULE_FIELDS = ("trigger", "trigger_config")


def refusal(message: str, status: int) -> JsonResponse:
    """An answer that previews nothing and says why."""
    return JsonResponse(
        {"description": "", "fire_times": [], "errors": {"__all__": [message]}},
        status=status,
    )


def preview_view(model_admin: TaskAdmin, request: HttpRequest) -> HttpResponse:
    """POST: the form's fields, plus ``_dts_object_id`` on a change page; answers JSON."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return refusal(
            gettext("The form is too large to preview (more than %(limit)d bytes).")
            % {"limit": MAX_BODY},
            413,
        )
    object_id = request.POST.get(OBJECT_ID, "")
    obj: Task | None = None
    if object_id:
        obj = model_admin.get_object(request, unquote(object_id))
        if obj is None:
            return refusal(gettext("This task no longer exists."), 404)
        if not model_admin.has_change_permission(request, obj):
            raise PermissionDenied
    elif not model_admin.has_add_permission(request):
        raise PermissionDenied
    form_class = model_admin.get_form(request, obj, change=obj is not None)
    form = form_class(request.POST, instance=obj)
    form.is_valid()  # runs full_clean(); the instance is never saved
    errors = {
        name: [str(message) for message in messages] for name, messages in form.errors.items()
    }
    description, fire_times, problem = describe(form)
    if problem:
        errors.setdefault("trigger_config", []).append(problem)
    config = None if "trigger_config" in errors else form.instance.trigger_config
    return JsonResponse(
        {
            "description": description,
            "fire_times": fire_times,
            "errors": errors,
            "trigger_config": config,
        }
    )


def describe(form: BaseForm) -> tuple[str, list[dict[str, str]], str]:
    """The schedule in words, its next fire times, and why they could not be computed.

    Only for a schedule the form accepted.

    A rejected trigger or config is left to its errors: the instance would still hold the value
    before the edit, and describing that would be describing something else.
    """
    if any(name in form.errors for name in SCHEDULE_FIELDS):
        return "", [], ""
    task: Task = form.instance  # type: ignore[attr-defined]
    try:
        words = task.describe_schedule()
        times = task.next_fire_times(count=PREVIEW_FIRES)
    except TaskConfigError as exc:
        return "", [], exc.message
    except Exception as exc:
        # A bug in describing or computing must not turn the preview into a 500.
        logger.exception("Could not preview the schedule of task %r", task.name)
        return "", [], str(exc) or type(exc).__name__
    return words, [fire_time(when, task) for when in times], ""


def fire_time(when: datetime, task: Task) -> dict[str, str]:
    """One fire time in the task's zone (its ``timezone`` key, else the site's) and the site's."""
    return {
        "iso": when.isoformat(),
        "task_zone": time_text(when, display_zone(task.trigger_config)),
        "site_zone": time_text(when),
    }
