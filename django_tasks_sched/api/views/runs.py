"""Runs: a task's run history, every run, one run, and cancelling a queued run."""

from __future__ import annotations

import re
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from django_tasks_sched.api import schemas
from django_tasks_sched.api.errors import Conflict, Invalid
from django_tasks_sched.api.permissions import RUN_TASK, VIEW_RUNS
from django_tasks_sched.api.representation import run_to_dict
from django_tasks_sched.api.views.base import ERRORS, SchedulerAPIView, documented, get_task, needs
from django_tasks_sched.models import TaskRun

FILTERS = [
    OpenApiParameter(
        "status",
        str,
        enum=list(TaskRun.Status.values),
        many=True,
        description="Only runs with this status (repeat for several).",
    ),
    OpenApiParameter(
        "since",
        str,
        description="Only runs enqueued at or after this ISO 8601 time (UTC if no offset).",
    ),
    OpenApiParameter("cursor", str, description="The page: from a response's next or previous."),
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 1000},
        description="Runs per page (default 50, at most 1000).",
    ),
]


class RunPages(CursorPagination):
    """Newest first, by a cursor: stable while runs are added, fast on a million rows."""

    ordering = ("-enqueued_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 1000

    def get_page_size(self, request: Request) -> int:
        # REST framework falls back to the default on a bad value; a script should be told.
        text = request.query_params.get(self.page_size_query_param)
        if text is None:
            return self.page_size
        # ASCII digits only: str.isdigit() takes "²", which int() refuses.
        if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= self.max_page_size:
            message = _("Give a whole number from 1 to %(most)d.") % {"most": self.max_page_size}
            raise Invalid(ValidationError({"limit": [message]}))
        return int(text)

    def decode_cursor(self, request: Request) -> Any:
        try:
            return super().decode_cursor(request)
        except NotFound:
            message = _("Not a cursor this API gave: follow a page's next or previous link.")
            raise Invalid(ValidationError({"cursor": [message]})) from None


def _filtered(request: Request, runs: QuerySet[TaskRun]) -> QuerySet[TaskRun]:
    statuses = request.query_params.getlist("status")
    unknown = sorted(set(statuses) - set(TaskRun.Status.values))
    if unknown:
        message = _("Unknown status %(status)s; one of %(known)s.") % {
            "status": ", ".join(unknown),
            "known": ", ".join(TaskRun.Status.values),
        }
        raise Invalid(ValidationError({"status": [message]}))
    if statuses:
        runs = runs.filter(status__in=statuses)
    since = request.query_params.get("since")
    if since is not None:
        runs = runs.filter(enqueued_at__gte=_parse_since(since))
    return runs


def _parse_since(text: str) -> datetime:
    try:
        when = parse_datetime(text) if "\x00" not in text else None
    except ValueError:
        when = None
    if when is None:
        raise Invalid(ValidationError({"since": [_("Give an ISO 8601 date and time.")]}))
    if timezone.is_naive(when):
        when = timezone.make_aware(when, dt_timezone.utc)
    return when


def _page(request: Request, view: Any, runs: QuerySet[TaskRun]) -> Response:
    paginator = RunPages()
    page = paginator.paginate_queryset(runs.select_related("task"), request, view=view)
    return paginator.get_paginated_response([run_to_dict(run) for run in page or []])


class JobRunsView(SchedulerAPIView):
    """``GET jobs/<id>/runs``: the task's runs, newest first, a page at a time."""

    needs = needs(GET=VIEW_RUNS)

    @documented(
        operation_id="get_job_runs",
        summary="A job's runs",
        parameters=FILTERS,
        responses={200: schemas.RunPage, 400: schemas.Error, 404: schemas.Error, **ERRORS},
    )
    def get(self, request: Request, job_id: str) -> Response:
        task = get_task(job_id)
        return _page(request, self, _filtered(request, TaskRun.objects.filter(task=task)))


class RunListView(SchedulerAPIView):
    """``GET runs``: every task's runs, newest first (``?job=`` narrows to one task)."""

    needs = needs(GET=VIEW_RUNS)

    @documented(
        operation_id="get_runs",
        summary="Every run",
        parameters=[*FILTERS, OpenApiParameter("job", str, description="Only this job's runs.")],
        responses={200: schemas.RunPage, 400: schemas.Error, 404: schemas.Error, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        runs = _filtered(request, TaskRun.objects.all())
        job_id = request.query_params.get("job")
        if job_id is not None:
            runs = runs.filter(task=get_task(job_id))
        return _page(request, self, runs)


def _get_run(run_id: int) -> TaskRun:
    # A path number past the column's range is no run (and no database error).
    in_range = 0 < run_id <= 2**63 - 1
    run = TaskRun.objects.select_related("task").filter(pk=run_id).first() if in_range else None
    if run is None:
        raise NotFound(_("Run %(id)s not found") % {"id": run_id})
    return run


class RunDetailView(SchedulerAPIView):
    """``GET runs/<run id>``."""

    needs = needs(GET=VIEW_RUNS)

    @documented(
        operation_id="get_run",
        summary="One run",
        responses={200: schemas.Run, 404: schemas.Error, **ERRORS},
    )
    def get(self, request: Request, run_id: int) -> Response:
        return Response(run_to_dict(_get_run(run_id)))


class RunCancelView(SchedulerAPIView):
    """``POST runs/<run id>/cancel``: cancel a run that is still queued."""

    needs = needs(POST=RUN_TASK)

    @documented(
        operation_id="cancel_run",
        summary="Cancel a queued run",
        request=None,
        responses={
            200: schemas.Run,
            409: OpenApiResponse(schemas.Error, description="The run is no longer queued."),
            404: schemas.Error,
            **ERRORS,
        },
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = _get_run(run_id)
        if not run.cancel():
            raise Conflict(
                _("Run %(id)s is %(status)s: only a queued run can be cancelled.")
                % {"id": run.pk, "status": run.status}
            )
        return Response(run_to_dict(run))
