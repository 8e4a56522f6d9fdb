"""Every error as Flask-APScheduler's ``{"error_message": ...}``, with ``errors`` per field.

REST framework's own errors (not authenticated, no permission, bad JSON, throttled) are
reshaped here too, so a client reads one shape whatever went wrong. The views use this
handler themselves: a project's ``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` is left alone.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class BadRequest(exceptions.APIException):
    """400 without field errors: a request that cannot be done as asked."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = gettext_lazy("Bad request.")
    default_code = "bad_request"


class Conflict(exceptions.APIException):
    """409: the request conflicts with the current state (an existing id, a finished run)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = gettext_lazy("The request conflicts with the current state.")
    default_code = "conflict"


class PreconditionFailed(exceptions.APIException):
    """412: ``If-Match`` names a version of the task that is no longer current."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = gettext_lazy("The task changed since you read it: read it again, then retry.")
    default_code = "precondition_failed"


class Invalid(exceptions.APIException):
    """400 with ``errors`` by field, from a Django ``ValidationError``."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, error: ValidationError, status_code: int | None = None) -> None:
        self.errors = field_errors(error)
        if status_code is not None:
            self.status_code = status_code
        super().__init__(summary(self.errors))


def field_errors(error: ValidationError) -> dict[str, list[str]]:
    """A ValidationError's messages by field (``__all__`` for those of no field)."""
    if hasattr(error, "error_dict"):
        return {
            field: [str(message) for item in items for message in item.messages]
            for field, items in error.error_dict.items()
        }
    return {"__all__": [str(message) for message in error.messages]}


def summary(errors: dict[str, list[str]]) -> str:
    """One line naming each field at fault, for ``error_message``."""
    parts = [
        f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
        for field, messages in errors.items()
    ]
    return _("Invalid job: %(errors)s") % {"errors": "; ".join(parts)}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST framework's handler, with the body reshaped to ``{"error_message", "errors"}``."""
    if isinstance(exc, ValidationError):
        exc = Invalid(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    body: dict[str, Any] = {"error_message": _message(exc, response.data)}
    if isinstance(exc, Invalid):
        body["errors"] = exc.errors
    elif isinstance(exc, exceptions.ValidationError) and isinstance(response.data, dict):
        body["errors"] = {key: _strings(value) for key, value in response.data.items()}
    response.data = body
    return response


def _message(exc: Exception, data: Any) -> str:
    if isinstance(exc, exceptions.APIException) and isinstance(exc.detail, str):
        return str(exc.detail)
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])
    return str(exc)


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]
