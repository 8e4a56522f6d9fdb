"""JSON bodies as Flask-APScheduler reads them (any content type), bounded."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

#: The largest body read when ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is None (no Django limit).
DEFAULT_LIMIT = 2_621_440


def _refuse_constant(name: str) -> Any:
    raise ValueError(_("%(value)s is not JSON") % {"value": name})


class JobJSONParser(BaseParser):
    """Parses the body as JSON whatever its content type (Flask's ``get_json(force=True)``).

    REST framework's JSONParser reads a body of any size and lets a deeply nested one raise
    ``RecursionError`` (a 500); this one stops at ``DATA_UPLOAD_MAX_MEMORY_SIZE`` and turns
    every failure into a 400. What JSON can hold is then bounded by ``full_clean()``.
    """

    media_type = "*/*"

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or DEFAULT_LIMIT
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise ParseError(_("The body is larger than %(limit)d bytes.") % {"limit": limit})
        if not raw.strip():
            return {}
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise ParseError(_("The body is not valid JSON: %(error)s") % {"error": exc}) from None
