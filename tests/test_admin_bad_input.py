"""Whatever is typed into the Task form, the answer is a field error, never an HTTP 500.

Each case was a 500 once (issue 11); the same input must give the same field error through
``full_clean()``, the model-level check every other way in (shell, facade, API) goes through.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client

from django_tasks_sched.models import Task
from tests.factories import make_task
from tests.test_admin import TASK_ADD, form_data, login, task_change_url

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000

#: (form overrides, the field whose error the form must show)
BAD_INPUT = [
    pytest.param(
        {"trigger_config": '{"minutes": 5, "timezone": "America"}'},
        "trigger_config",
        id="zone-area",
    ),
    pytest.param(
        {"trigger_config": '{"minutes": 5, "timezone": "Europe"}'},
        "trigger_config",
        id="zone-area-2",
    ),
    pytest.param(
        {"trigger_config": '{"minutes": 5, "timezone": "%s"}' % ("A/" * 150)},
        "trigger_config",
        id="zone-300",
    ),
    pytest.param(
        {"trigger_config": '{"minutes": 5, "timezone": "Europe/Berlin\\u0000"}'},
        "trigger_config",
        id="zone-nul",
    ),
    pytest.param(
        {"trigger_config": '{"minutes": 5, "timezone": "../../etc/passwd"}'},
        "trigger_config",
        id="zone-path",
    ),
    pytest.param({"trigger_config": '{"year": 9999}'}, "trigger_config", id="cron-year-9999"),
    pytest.param(
        {"trigger_config": '{"year": "2026-9999", "hour": 1}'},
        "trigger_config",
        id="cron-year-range",
    ),
    pytest.param(
        {"trigger_config": '{"days": 999999999}', "trigger": "interval"},
        "trigger_config",
        id="days-huge",
    ),
    pytest.param(
        {"trigger_config": '{"weeks": 416015}', "trigger": "interval"},
        "trigger_config",
        id="weeks-huge",
    ),
    pytest.param(
        {"trigger_config": '{"seconds": 1e308}', "trigger": "interval"},
        "trigger_config",
        id="seconds-1e308",
    ),
    pytest.param(
        {"trigger_config": '{"seconds": 0.000001}', "trigger": "interval"},
        "trigger_config",
        id="seconds-tiny",
    ),
    pytest.param(
        {"trigger_config": '{"seconds": 1e-9}', "trigger": "interval"},
        "trigger_config",
        id="seconds-1e-9",
    ),
    pytest.param(
        {"trigger_config": '{"seconds": 5, "jitter": 1e308}', "trigger": "interval"},
        "trigger_config",
        id="jitter-1e308",
    ),
    pytest.param(
        {"trigger_config": '{"seconds": NaN}', "trigger": "interval"},
        "trigger_config",
        id="seconds-nan",
    ),
    pytest.param(
        {"trigger_config": '{"crontab": "0 0 * * *", "jitter": Infinity}'},
        "trigger_config",
        id="jitter-inf",
    ),
    pytest.param(
        {
            "trigger_config": '{"minutes": 5, "start_date": "9999-12-31T23:59:59"}',
            "trigger": "interval",
        },
        "trigger_config",
        id="start-9999",
    ),
    pytest.param(
        {
            "trigger_config": '{"run_date": "9999-12-31T23:59:59", "timezone": "America/New_York"}',
            "trigger": "date",
        },
        "trigger_config",
        id="run-date-9999",
    ),
    pytest.param(
        {
            "trigger_config": '{"run_date": "0001-01-01T00:00:00", "timezone": "Asia/Tokyo"}',
            "trigger": "date",
        },
        "trigger_config",
        id="run-date-year-1",
    ),
    pytest.param(
        {"trigger_config": '{"crontab": "%s"}' % ("0," * 200 + "0 * * * *")},
        "trigger_config",
        id="crontab-long",
    ),
    pytest.param({"trigger_config": DEEP}, "trigger_config", id="config-deep"),
    pytest.param({"args": "[NaN, 1]"}, "args", id="args-nan"),
    pytest.param({"args": "[Infinity, 1]"}, "args", id="args-inf"),
    pytest.param({"args": DEEP}, "args", id="args-deep-100000"),
    pytest.param({"args": "[" * 22 + "]" * 22}, "args", id="args-deep-22"),
    pytest.param({"args": '["a\\u0000b", 1]'}, "args", id="args-nul"),
    pytest.param(
        {"kwargs": '{"a\\u0000": 1}', "func": "tests.testapp.jobs:takes_anything", "args": "[]"},
        "kwargs",
        id="kwargs-nul-key",
    ),
    pytest.param(
        {"kwargs": '{"a": "x\\u0000"}', "func": "tests.testapp.jobs:takes_anything", "args": "[]"},
        "kwargs",
        id="kwargs-nul",
    ),
    pytest.param({"args": "[%s, 1]" % ("9" * 400)}, "args", id="args-huge-int"),
    pytest.param({"args": '["%s", 1]' % ("x" * 70_000)}, "args", id="args-70k"),
    pytest.param({"description": "a\x00b"}, "description", id="description-nul"),
    pytest.param({"name": "a\x00b"}, "name", id="name-nul"),
    pytest.param({"inactive_reason": "a\x00b"}, "inactive_reason", id="reason-nul"),
    pytest.param(
        {"max_instances": "99999999999999999999"}, "max_instances", id="max-instances-huge"
    ),
    pytest.param({"timeout": "99999999999999999999"}, "timeout", id="timeout-huge"),
    pytest.param({"misfire_grace_time": "-1"}, "misfire_grace_time", id="grace-negative"),
    pytest.param({"misfire_grace_time": "0"}, "misfire_grace_time", id="grace-zero"),
]


@pytest.fixture
def admin() -> Client:
    return login(User.objects.create_superuser("root", "root@example.com", "pw"))


@pytest.mark.parametrize(("overrides", "field"), BAD_INPUT)
def test_bad_input_is_a_field_error_on_add(
    admin: Client, overrides: dict[str, str], field: str
) -> None:
    response = admin.post(TASK_ADD, form_data(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert not Task.objects.exists()


@pytest.mark.parametrize(("overrides", "field"), BAD_INPUT)
def test_bad_input_is_a_field_error_on_change(
    admin: Client, overrides: dict[str, str], field: str
) -> None:
    task = make_task("nightly", func="tests.testapp.jobs:add", args=[1, 2])
    response = admin.post(task_change_url(task), form_data(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    task.refresh_from_db()
    assert task.args == [1, 2]


def _model_value(name: str, text: str) -> Any:
    """The Python value a form field would hand the model (deep JSON built without recursion)."""
    if name in ("args", "kwargs", "trigger_config"):
        try:
            return json.loads(text)
        except RecursionError:
            value: list[Any] = []
            for _ in range(text.count("[") - 1):
                value = [value]
            return value
    if name in ("max_instances", "timeout", "misfire_grace_time"):
        return int(text)
    return text


@pytest.mark.parametrize(("overrides", "field"), BAD_INPUT)
def test_bad_input_is_a_field_error_of_full_clean(overrides: dict[str, str], field: str) -> None:
    fields = {
        "name": "nightly",
        "func": "tests.testapp.jobs:add",
        "args": [1, 2],
        "trigger": "cron",
        "trigger_config": {"crontab": "30 2 * * *"},
    }
    fields.update({name: _model_value(name, text) for name, text in overrides.items()})
    with pytest.raises(ValidationError) as raised:
        Task(**fields).full_clean()
    assert field in raised.value.message_dict, raised.value.message_dict


def test_a_config_out_of_json_bounds_is_refused_once() -> None:
    task = Task(name="x", func="tests.testapp.jobs:noop", trigger="interval")
    task.trigger_config = {"seconds": float("nan")}
    with pytest.raises(ValidationError) as raised:
        task.full_clean()
    assert len(raised.value.message_dict["trigger_config"]) == 1
