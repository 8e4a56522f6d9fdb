"""Jobs: Flask-APScheduler's job endpoints over the Task table."""

from __future__ import annotations

import copy
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.request import Request
from rest_framework.response import Response

from django_tasks_sched.api import schemas
from django_tasks_sched.api.errors import Conflict, Invalid
from django_tasks_sched.api.etags import check_if_match
from django_tasks_sched.api.permissions import (
    ADD_TASK,
    CHANGE_TASK,
    DELETE_TASK,
    RUN_TASK,
    VIEW_TASK,
)
from django_tasks_sched.api.representation import job_arguments, job_to_dict
from django_tasks_sched.api.views.base import (
    ERRORS,
    SchedulerAPIView,
    documented,
    get_task,
    job_response,
    needs,
)
from django_tasks_sched.exceptions import ConflictingIdError, JobArgumentError, TaskConfigError
from django_tasks_sched.facade import prepare_job, save_job
from django_tasks_sched.jobspec import apply_changes, job_spec
from django_tasks_sched.models import Task, TaskRun, check_reason
from django_tasks_sched.policy import RUN_PERMISSION, makes_due_now, run_permission_message

#: The namespace of ``django_tasks_sched.api.urls`` (``app_name``).
URL_NAMESPACE = "django_tasks_sched_api"
NOT_FOUND = {404: schemas.Error}
IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description="The job's ETag as read: the change is refused (412) if it changed since.",
)
BOOLEAN = {"true": True, "false": False, "1": True, "0": False}
#: What POST jobs/<id>/pause, resume and run answer.
ACTION_RESPONSES = {
    200: schemas.Job,
    400: schemas.Error,
    403: schemas.Error,
    401: schemas.Error,
    **NOT_FOUND,
}


def _argument_error(exc: JobArgumentError) -> Invalid:
    return Invalid(ValidationError({exc.field: [str(exc)]}))


def _check_run_permission(request: Request, task: Task, previous: Task | None) -> None:
    """As in the admin: a change that makes the task run now needs the run permission."""
    if request.user.has_perm(RUN_PERMISSION):
        return
    fire = makes_due_now(task, previous)
    if fire is not None:
        raise Invalid(
            ValidationError({"trigger_config": [run_permission_message(fire)]}), status_code=403
        )


def _check_declared(task: Task, previous: Task | None) -> None:
    """409 for a change to a field the task's declaration owns (read-only, as in the admin).

    Only a change counts: a job read from the API and sent back as it is passes.
    """
    if previous is None:
        return
    changed = [
        name for name in previous.owned_fields() if getattr(task, name) != getattr(previous, name)
    ]
    if changed:
        message = _("Declared in code (%(source)s: %(ref)s): change it where it is declared.") % {
            "source": previous.get_source_display(),
            "ref": previous.source_ref or "-",
        }
        raise Invalid(ValidationError({name: [message] for name in changed}), status_code=409)


class JobListView(SchedulerAPIView):
    """``GET jobs`` (every task, a plain list) and ``POST jobs`` (``add_job``)."""

    needs = needs(GET=VIEW_TASK, POST=ADD_TASK)

    @documented(
        operation_id="get_jobs",
        summary="Every job",
        parameters=[
            OpenApiParameter("active", bool, description="Only active (or paused) tasks."),
            OpenApiParameter(
                "trigger", str, enum=list(Task.Trigger.values), description="Only this trigger."
            ),
        ],
        responses={200: schemas.Job(many=True), 400: schemas.Error, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        tasks = Task.objects.order_by("name")
        active = request.query_params.get("active")
        if active is not None:
            if active.lower() not in BOOLEAN:
                raise Invalid(ValidationError({"active": [_("Must be true or false.")]}))
            tasks = tasks.filter(active=BOOLEAN[active.lower()])
        trigger = request.query_params.get("trigger")
        if trigger is not None:
            if trigger not in Task.Trigger.values:
                raise Invalid(ValidationError({"trigger": [_("Must be date, interval or cron.")]}))
            tasks = tasks.filter(trigger=trigger)
        return Response([job_to_dict(task) for task in tasks.iterator(chunk_size=2000)])

    @documented(
        operation_id="add_job",
        summary="Add a job (add_job)",
        request=schemas.JobInput,
        responses={
            200: schemas.Job,
            400: schemas.Error,
            409: OpenApiResponse(schemas.Error, description="The id exists, or is declared."),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        arguments = job_arguments(request.data, creating=True)
        job_id = arguments.pop("id")
        replace = arguments.pop("replace_existing", False)
        try:
            spec = job_spec(
                arguments.pop("func", None),
                arguments.pop("trigger", None),
                arguments.pop("args", None),
                arguments.pop("kwargs", None),
                arguments,
                default_run_date=True,
            )
        except JobArgumentError as exc:
            raise _argument_error(exc) from None
        try:
            task = self._add(request, job_id, spec, replace)
        except ConflictingIdError:
            if not replace:
                raise Conflict(_("Job %(id)s already exists.") % {"id": job_id}) from None
            # Added by another request between our look and our insert: replace that one.
            task = self._add(request, job_id, spec, replace)
        return job_response(task)

    def _add(self, request: Request, job_id: str, spec: Any, replace: bool) -> Task:
        with transaction.atomic():
            task, previous = prepare_job(job_id, spec, replace)
            if previous is not None:
                if not any(request.user.has_perm(perm) for perm in CHANGE_TASK):
                    self.permission_denied(request)
                _check_declared(task, previous)
            _check_run_permission(request, task, previous)
            save_job(task)
        return task


class JobDetailView(SchedulerAPIView):
    """``GET``, ``PATCH`` (``modify_job``) and ``DELETE`` (``remove_job``) ``jobs/<id>``."""

    needs = needs(GET=VIEW_TASK, PATCH=CHANGE_TASK, DELETE=DELETE_TASK)

    @documented(
        operation_id="get_job",
        summary="One job",
        responses={200: schemas.Job, **NOT_FOUND, **ERRORS},
    )
    def get(self, request: Request, job_id: str) -> Response:
        return job_response(get_task(job_id))

    @documented(
        operation_id="update_job",
        summary="Change a job (modify_job)",
        parameters=[IF_MATCH],
        request=schemas.JobInput,
        responses={
            200: schemas.Job,
            400: schemas.Error,
            409: OpenApiResponse(schemas.Error, description="A field declared in code."),
            412: OpenApiResponse(schemas.Error, description="Changed since read (If-Match)."),
            **NOT_FOUND,
            **ERRORS,
        },
    )
    def patch(self, request: Request, job_id: str) -> Response:
        arguments = job_arguments(request.data, creating=False, job_id=job_id)
        if arguments.pop("id", job_id) != job_id:
            raise Invalid(ValidationError({"id": [_("A job's id cannot be changed.")]}))
        with transaction.atomic():
            task = get_task(job_id, lock=True)
            check_if_match(request, task)
            previous = copy.deepcopy(task)  # as stored, before the change
            try:
                apply_changes(task, arguments)
            except JobArgumentError as exc:
                raise _argument_error(exc) from None
            _check_declared(task, previous)
            task.full_clean(validate_unique=False)
            _check_run_permission(request, task, previous)
            if task.active != previous.active:
                # Switched on or off by hand: a returning declaration must not undo it.
                task.retired_at = None
            task.save()
        return job_response(task)

    @documented(
        operation_id="delete_job",
        summary="Delete a job and its runs (remove_job)",
        parameters=[IF_MATCH],
        responses={
            204: OpenApiResponse(description="Deleted."),
            412: OpenApiResponse(schemas.Error, description="Changed since read (If-Match)."),
            **NOT_FOUND,
            **ERRORS,
        },
    )
    def delete(self, request: Request, job_id: str) -> Response:
        with transaction.atomic():
            task = get_task(job_id, lock=True)
            check_if_match(request, task)
            task.delete()
        return Response(status=204)


class JobActionView(SchedulerAPIView):
    """``POST jobs/<id>/pause``, ``resume`` and ``run``."""

    needs = needs(POST=CHANGE_TASK)
    action = "pause"

    @documented(
        request=None,
        responses=ACTION_RESPONSES,
    )
    def post(self, request: Request, job_id: str) -> Response:
        if self.action == "run":
            with transaction.atomic():
                # Locked: a DELETE of the task at the same moment waits, or wins (404).
                task = get_task(job_id, lock=True)
                run = task.run_now(origin=TaskRun.Origin.API)
            # The run's address, for a client that waits for it (GET runs/<id>).
            namespace = request.resolver_match.namespace if request.resolver_match else None
            path = reverse(f"{namespace or URL_NAMESPACE}:run", kwargs={"run_id": run.pk})
            return job_response(task, Location=request.build_absolute_uri(path))
        with transaction.atomic():
            task = get_task(job_id, lock=True)
            if self.action == "pause":
                task.pause(_pause_reason(request), by=request.user.get_username())
            else:
                previous = copy.deepcopy(task)  # as stored, before the change
                task.active = True
                _check_run_permission(request, task, previous)
                try:
                    task.resume()
                except TaskConfigError as exc:
                    raise Invalid(ValidationError({exc.field: [exc.message]})) from exc
        return job_response(task)


class JobPauseView(JobActionView):
    """``POST jobs/<id>/pause``, with an optional ``{"reason": "..."}``."""

    action = "pause"

    @documented(
        request=schemas.Pause,
        responses=ACTION_RESPONSES,
    )
    def post(self, request: Request, job_id: str) -> Response:
        return super().post(request, job_id)


def _pause_reason(request: Request) -> str:
    """The body's ``reason`` (an empty body: none), checked as ``Task.pause()`` checks it."""
    data = request.data if request.data is not None else {}
    if not isinstance(data, dict) or set(data) - {"reason"}:
        raise Invalid(ValidationError({"reason": [_('The body is {"reason": "..."}, or empty.')]}))
    try:
        return check_reason(data.get("reason", ""), field="reason")
    except TaskConfigError as exc:
        raise Invalid(ValidationError({exc.field: [exc.message]})) from exc


class JobRunView(JobActionView):
    """``POST jobs/<id>/run``: queue a run now for a scheduler process (or the task's workers)."""

    needs = needs(POST=RUN_TASK)
    action = "run"
