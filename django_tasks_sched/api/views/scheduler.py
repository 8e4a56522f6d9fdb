"""The scheduler as a whole: its state, and firing switched off and on everywhere."""

from __future__ import annotations

import socket
from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from django_tasks_sched.api import schemas
from django_tasks_sched.api.errors import BadRequest
from django_tasks_sched.api.permissions import PAUSE_SCHEDULER, VIEW_TASK
from django_tasks_sched.api.representation import iso
from django_tasks_sched.api.views.base import ERRORS, SchedulerAPIView, documented, needs
from django_tasks_sched.firing import firing, switch_firing
from django_tasks_sched.models import SchedulerProcess

NO_CONTENT = {204: OpenApiResponse(description="Done.")}


class SchedulerInfoView(SchedulerAPIView):
    """``GET`` the prefix: Flask-APScheduler's scheduler info, with the live processes."""

    needs = needs(GET=VIEW_TASK + PAUSE_SCHEDULER)

    @documented(
        operation_id="get_scheduler_info",
        summary="Scheduler info",
        responses={200: schemas.SchedulerInfo, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        switch = firing()
        processes = list(SchedulerProcess.objects.alive())
        return Response(
            {
                "current_host": socket.gethostname(),
                # Any host may run a scheduler process: there is no allow-list to report.
                "allowed_hosts": ["*"],
                "running": switch.on and bool(processes),
                "firing": {
                    "on": switch.on,
                    "changed_at": iso(switch.changed_at),
                    "changed_by": switch.changed_by,
                },
                "processes": [
                    {
                        "worker_id": process.worker_id,
                        "hostname": process.hostname,
                        "pid": process.pid,
                        "version": process.version,
                        "started_at": iso(process.started_at),
                        "last_seen": iso(process.last_seen),
                    }
                    for process in processes
                ],
            }
        )


class FiringView(SchedulerAPIView):
    """``POST pause|resume|shutdown|start``: firing off or on in every scheduler process."""

    needs = needs(POST=PAUSE_SCHEDULER)
    #: Set per URL: the state to switch to, and whether already being in it is an error.
    on: bool = True
    strict: bool = False

    @documented(request=None, responses={**NO_CONTENT, 400: schemas.Error, **ERRORS})
    def post(self, request: Request) -> Response:
        by = f"{request.user.get_username()} (API)"
        if not switch_firing(self.on, by) and self.strict:
            message = (
                _("The scheduler is already running: firing is on.")
                if self.on
                else _("The scheduler is not running: firing is already stopped.")
            )
            raise BadRequest(message)
        return Response(status=204)


class OpenAPIView(SchedulerAPIView):
    """``GET openapi.json``: this API's OpenAPI 3 schema (open to anyone, as the docs are)."""

    schema = None  # type: ignore[assignment]  # not a path of its own schema
    permission_classes = [AllowAny]
    authentication_classes = []  # public: a bad login must not stand in the way

    def get(self, request: Request) -> Response:
        from django_tasks_sched.api.openapi import schema

        return Response(schema())


class NotFoundView(SchedulerAPIView):
    """Any other path under the API's prefix: a 404 in the API's shape, not an HTML page."""

    schema = None  # type: ignore[assignment]  # not a path of the schema
    permission_classes = [AllowAny]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        raise NotFound(_("No such endpoint: %(path)s") % {"path": request.path})
