"""What every view of the API shares: errors, body parsing, permissions, task lookup."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.apps import apps
from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import AuthenticationFailed, NotFound
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from django_tasks_sched import audit
from django_tasks_sched.api import schemas
from django_tasks_sched.api.errors import exception_handler
from django_tasks_sched.api.etags import etag
from django_tasks_sched.api.parsers import JobJSONParser
from django_tasks_sched.api.permissions import Needs
from django_tasks_sched.api.representation import job_to_dict
from django_tasks_sched.models import Task, TaskChange
from django_tasks_sched.rawsql import take_write_lock

F = TypeVar("F", bound=Callable[..., Any])

#: What every endpoint may answer besides its own: not logged in, not allowed.
ERRORS = {401: schemas.Error, 403: schemas.Error}


class SchedulerAPIView(APIView):
    """Flask-APScheduler's error shape and body parsing; permissions from ``needs``."""

    schema = AutoSchema()
    parser_classes = [JobJSONParser]
    permission_classes = [Needs]
    #: For ``ScopedRateThrottle``: the rate is ``DEFAULT_THROTTLE_RATES["django_tasks_sched"]``.
    throttle_scope = "django_tasks_sched"
    #: The permissions a request needs, by method: any one of each tuple.
    needs: dict[str, tuple[str, ...]] = {}

    def get_exception_handler(self) -> Any:
        return exception_handler

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # Task changes are recorded as the API's, by the user REST framework authenticates
        # (known only once dispatch has run the authenticators: hence the callable).
        with audit.recording(TaskChange.Via.API, lambda: self.request.user.get_username()):
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if _credentials_hold_nul(request):
            # Django's and REST framework's lookups would hand the NUL to the database, where
            # PostgreSQL refuses it with a DataError (a 500): no such user can exist anyway.
            raise AuthenticationFailed(_("Invalid credentials."))
        super().initial(request, *args, **kwargs)

    def get_renderers(self) -> list[BaseRenderer]:
        # The browsable API needs REST framework's templates: without the app, JSON only (a
        # browser would get a 500 from the missing template otherwise).
        renderers = super().get_renderers()
        if apps.is_installed("rest_framework"):
            return renderers
        return [r for r in renderers if not isinstance(r, BrowsableAPIRenderer)] or [JSONRenderer()]

    def get_throttles(self) -> list[BaseThrottle]:
        # Read at request time, not when the class was defined: REST_FRAMEWORK's throttles
        # (off unless configured) apply however the settings were loaded.
        classes = cast("list[type[BaseThrottle]]", api_settings.DEFAULT_THROTTLE_CLASSES)
        return [throttle() for throttle in classes]


def _credentials_hold_nul(request: Request) -> bool:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _space, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value.strip(), validate=True).decode("utf-8", "replace")
        except (ValueError, binascii.Error):
            value = ""
    session = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    return "\x00" in value or "\x00" in session


def needs(**by_method: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """``needs`` for a view; HEAD and OPTIONS need what GET needs."""
    if "GET" in by_method:
        by_method.setdefault("HEAD", by_method["GET"])
        by_method.setdefault("OPTIONS", by_method["GET"])
    return by_method


def documented(**schema: Any) -> Callable[[F], F]:
    """drf-spectacular's ``extend_schema``, built on its AutoSchema whatever the project's
    ``DEFAULT_SCHEMA_CLASS`` is (REST framework's own cannot describe these views)."""

    def decorate(method: F) -> F:
        # Where extend_schema looks for a schema set before it on a method.
        method.kwargs = {"schema": AutoSchema}  # type: ignore[attr-defined]
        return extend_schema(**schema)(method)

    return decorate


def get_task(job_id: str, *, lock: bool = False) -> Task:
    """The task named ``job_id``, or 404 in Flask-APScheduler's words.

    With ``lock`` (inside a transaction) the row is locked until the transaction ends; on
    SQLite, which has no row locks, the database's write lock is taken first instead.
    """
    queryset = Task.objects.all()
    if lock:
        take_write_lock(Task, queryset.db)
        queryset = queryset.select_for_update()
    task = queryset.named(job_id).first()
    if task is None:
        raise NotFound(_("Job %(id)s not found") % {"id": job_id})
    return task


def job_response(task: Task, status: int = 200, **headers: str) -> Response:
    """The job as JSON, with its ETag."""
    return Response(job_to_dict(task), status=status, headers={"ETag": etag(task), **headers})
