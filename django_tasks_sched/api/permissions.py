"""Who may do what: the model permissions the admin asks for, per endpoint."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

APP = "django_tasks_sched"


class Needs(BasePermission):
    """An authenticated user holding any one of ``perms`` (each ``app_label.codename``)."""

    perms: tuple[str, ...] = ()
    message = _("You do not have the permission this request needs.")

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        method = request.method or ""
        needs = getattr(view, "needs", {})
        if method not in needs and not hasattr(view, method.lower()):
            return True  # no such handler: REST framework answers 405, not 403
        # A handler that names no permission is allowed to nobody.
        return any(user.has_perm(perm) for perm in needs.get(method, self.perms))


def perm(codename: str) -> str:
    return f"{APP}.{codename}"


#: Reading tasks: what lets the admin show them (view, or change).
VIEW_TASK = (perm("view_task"), perm("change_task"))
ADD_TASK = (perm("add_task"),)
CHANGE_TASK = (perm("change_task"),)
DELETE_TASK = (perm("delete_task"),)
RUN_TASK = (perm("run_task"),)
#: Reading runs: what lets the admin show them (a task's page lists its recent runs).
VIEW_RUNS = (*VIEW_TASK, perm("view_taskrun"), perm("change_taskrun"))
#: Switching firing on or off in every scheduler process.
PAUSE_SCHEDULER = (perm("pause_scheduler"),)
