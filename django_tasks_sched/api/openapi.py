"""The API's OpenAPI 3 schema: served at ``openapi.json``, committed as ``docs/openapi.json``.

``python -m django_tasks_sched.api.openapi`` (with ``DJANGO_SETTINGS_MODULE`` set) prints it;
``tests/test_api_schema.py`` fails when the committed copy is not what this generates.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import patched_settings

from django_tasks_sched import __version__

#: drf-spectacular's settings for this API alone (the project's SPECTACULAR_SETTINGS are left
#: to the project's own schema).
SETTINGS: dict[str, Any] = {
    "TITLE": "django-tasks-sched",
    "DESCRIPTION": (
        "Scheduled tasks and their runs, with Flask-APScheduler's endpoints and JSON. "
        "Paths are relative to where the project mounts django_tasks_sched.api.urls."
    ),
    "VERSION": __version__,
    "COMPONENT_SPLIT_REQUEST": False,
}


@functools.cache
def schema() -> dict[str, Any]:
    """The schema as a dict, generated once per process from the API's URLs and views."""
    with patched_settings(SETTINGS):
        generator = SchemaGenerator(urlconf="django_tasks_sched.api.urls")
        result: dict[str, Any] = generator.get_schema(request=None, public=True)
    return result


def schema_text() -> str:
    """The schema as the committed file holds it."""
    return json.dumps(schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # pragma: no cover
    import django

    django.setup()
    print(schema_text(), end="")
