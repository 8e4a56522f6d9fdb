"""The API's OpenAPI schema: the committed copy is current, and a fuzzer finds no 500.

The fuzzer (schemathesis) generates requests from the committed schema and sends them to a
live test server as a user holding every permission, then checks each response: never a
5xx, a status code and a body the schema documents.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from django_tasks_sched.models import Task, TaskRun

pytest.importorskip("rest_framework")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def test_committed_schema_is_current() -> None:
    from django_tasks_sched.api.openapi import schema_text

    assert SCHEMA_PATH.read_text() == schema_text(), (
        "docs/openapi.json is stale: regenerate it with `make openapi`"
    )


schema = schemathesis.openapi.from_path(str(SCHEMA_PATH))


@pytest.fixture
def server(live_server: Any) -> tuple[str, dict[str, str]]:
    User.objects.create_superuser("fuzz", password="pw")
    task = Task.objects.create(
        name="fuzzed",
        func="tests.testapp.jobs:noop",
        trigger=Task.Trigger.INTERVAL,
        trigger_config={"minutes": 5},
    )
    TaskRun.objects.create(task=task, status=TaskRun.Status.SUCCESSFUL)
    token = base64.b64encode(b"fuzz:pw").decode()
    return f"{live_server.url}/scheduler", {"Authorization": f"Basic {token}"}


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(
    # More with DTS_FUZZ_EXAMPLES=500 (a longer local hunt); CI's cells each run the default.
    max_examples=int(os.environ.get("DTS_FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzzed_requests_get_documented_answers(
    case: Any, server: tuple[str, dict[str, str]]
) -> None:
    base_url, headers = server
    # A made-up Host is refused by Django's ALLOWED_HOSTS before any view: not the API's.
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "host"}
    response = case.call(base_url=base_url, headers=headers)
    # Every check but "schema-valid data is accepted": full_clean() judges far more than a
    # JSON schema can say (a callable's path, a cron field's range), and answers 400.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
