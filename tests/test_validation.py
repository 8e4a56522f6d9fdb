"""``Task.full_clean()`` end to end: every bad input is named by field, with what is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from django_tasks_sched.models import Task
from tests.outside import jobs as outside  # noqa: F401  (registers its callables)

pytestmark = pytest.mark.django_db

GOOD: dict[str, Any] = {
    "name": "job",
    "func": "tests.testapp.jobs:noop",
    "trigger": "interval",
    "trigger_config": {"minutes": 5},
}


def make(**changes: Any) -> Task:
    return Task(**{**GOOD, **changes})


def errors_of(task: Task) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        task.full_clean()
    return info.value.message_dict


OUTSIDE = {"ALLOWED_MODULES": ["tests.outside"]}
EVIL_PREFIX = {"ALLOWED_MODULES": ["tests.testapp.job"]}  # must not admit tests.testapp.jobs

BAD_INPUTS = [
    # -- func ----------------------------------------------------------------------------------
    pytest.param({"func": ""}, None, "func", "cannot be blank", id="func-blank"),
    pytest.param(
        {"func": "tests.testapp.jobz:noop"},
        None,
        "func",
        "cannot import module 'tests.testapp.jobz'",
        id="func-not-importable",
    ),
    pytest.param(
        {"func": "tests.testapp.jobs.nope"},
        None,
        "func",
        "has no attribute 'nope'",
        id="func-no-such-attribute",
    ),
    pytest.param(
        {"func": "tests.testapp.jobs:NOT_CALLABLE"},
        None,
        "func",
        "is not callable (it is of type int)",
        id="func-not-callable",
    ),
    pytest.param({"func": "os:system"}, None, "func", "'os:system' is not allowed", id="os-system"),
    pytest.param({"func": "os.system"}, None, "func", "is not allowed", id="os-system-dotted"),
    pytest.param(
        {"func": "subprocess:check_output"}, None, "func", "is not allowed", id="subprocess"
    ),
    pytest.param(
        {"func": "django.core.management:call_command"},
        None,
        "func",
        "module 'django.core.management' is outside",
        id="django-call-command",
    ),
    pytest.param(
        {"func": "django_tasks_sched.models:Task"},
        None,
        "func",
        "is not allowed",
        id="this-app-itself",
    ),
    pytest.param(
        {"func": "tests.testapp.jobs:add"},
        EVIL_PREFIX,
        "func",
        "outside TASKS_SCHED['ALLOWED_MODULES'] (tests.testapp.job)",
        id="prefix-is-not-a-string-prefix",
    ),
    pytest.param(
        {"func": "tests.outside.jobs:unregistered_job"},
        None,
        "func",
        "not registered with @register",
        id="outside-apps-not-registered",
    ),
    pytest.param(
        {"func": "tests.outside.jobs:getcwd"},
        OUTSIDE,
        "func",
        "defined in module",
        id="imported-into-allowed-module",
    ),
    pytest.param(
        {"func": "tests.testapp.jobs:time.sleep"},
        None,
        "func",
        "defined in module 'time'",
        id="module-attribute-of-allowed-module",
    ),
    pytest.param(
        {"func": "tests.outside.broken:job"},
        OUTSIDE,
        "func",
        "RuntimeError: broken on purpose",
        id="import-raises",
    ),
    pytest.param(
        {"func": "tests.testapp.jobs add"}, None, "func", "contains whitespace", id="func-space"
    ),
    pytest.param(
        {"func": "tests.testapp.jobs:add:x"}, None, "func", "more than one ':'", id="two-colons"
    ),
    pytest.param({"func": "noop"}, None, "func", "needs a module and a name", id="no-module"),
    pytest.param(
        {"func": "tests.testapp.jobs:add.__globals__"},
        None,
        "func",
        "special names",
        id="dunder-attribute",
    ),
    # -- args / kwargs -------------------------------------------------------------------------
    pytest.param({"args": {"a": 1}}, None, "args", "must be a JSON list", id="args-object"),
    pytest.param({"args": "1, 2"}, None, "args", "must be a JSON list", id="args-string"),
    pytest.param({"kwargs": [1]}, None, "kwargs", "must be a JSON object", id="kwargs-list"),
    pytest.param({"kwargs": "a=1"}, None, "kwargs", "must be a JSON object", id="kwargs-string"),
    pytest.param(
        {"func": "tests.testapp.jobs:add", "args": [1]},
        None,
        "args",
        "do not fit tests.testapp.jobs:add(a, b): missing a required argument: 'b'",
        id="args-missing",
    ),
    pytest.param(
        {"func": "tests.testapp.jobs:add", "args": [1, 2, 3]},
        None,
        "args",
        "too many positional arguments",
        id="args-too-many",
    ),
    pytest.param(
        {"func": "tests.testapp.jobs:greet", "args": ["Ada"], "kwargs": {"colour": "red"}},
        None,
        "kwargs",
        "unexpected keyword argument 'colour'",
        id="kwargs-unexpected",
    ),
    pytest.param(
        {"func": "tests.testapp.jobs:add", "args": [1], "kwargs": {"a": 2}},
        None,
        "kwargs",
        "multiple values for argument 'a'",
        id="kwargs-duplicate",
    ),
    pytest.param(
        {"func": "tests.outside.jobs:needs_keyword"},
        None,
        "kwargs",
        "missing a required",
        id="kwargs-missing-keyword-only",
    ),
    pytest.param(
        {"func": "tests.testapp.jobs:Maintenance.vacuum", "args": ["a", "b"]},
        None,
        "args",
        "Maintenance.vacuum(table='all'): too many positional arguments",
        id="static-method-args",
    ),
    # -- numbers -------------------------------------------------------------------------------
    pytest.param(
        {"max_instances": 0}, None, "max_instances", "greater than or equal to 1", id="mi0"
    ),
    pytest.param({"timeout": -1}, None, "timeout", "greater than or equal to", id="timeout-neg"),
    pytest.param({"timeout": 0}, None, "timeout", "greater than or equal to 1", id="timeout-0"),
    pytest.param(
        {"misfire_grace_time": -5},
        None,
        "misfire_grace_time",
        "greater than or equal to",
        id="misfire-negative",
    ),
    pytest.param(
        {"misfire_grace_time": 0},
        None,
        "misfire_grace_time",
        "greater than or equal to 1",
        id="misfire-zero",
    ),
    pytest.param(
        {"timeout": 10**10}, None, "timeout", "less than or equal to 315360000", id="timeout-huge"
    ),
    pytest.param(
        {"max_retries": 10**7}, None, "max_retries", "less than or equal to", id="retries-huge"
    ),
    pytest.param(
        {"max_consecutive_failures": 0},
        None,
        "max_consecutive_failures",
        "greater than or equal to 1",
        id="failure-limit-0",
    ),
    pytest.param({"name": ""}, None, "name", "cannot be blank", id="name-blank"),
    # -- trigger / trigger_config --------------------------------------------------------------
    pytest.param(
        {"trigger": "weekly"}, None, "trigger", "not a valid choice", id="unknown-trigger"
    ),
    pytest.param({"trigger": ""}, None, "trigger", "cannot be blank", id="no-trigger"),
    pytest.param({"trigger": "weekly"}, None, "trigger", "unknown trigger", id="trigger-named"),
    pytest.param(
        {"trigger_config": [1, 2]},
        None,
        "trigger_config",
        "must be a JSON object",
        id="config-not-object",
    ),
    pytest.param(
        {"trigger_config": "minutes=5"},
        None,
        "trigger_config",
        "must be a JSON object",
        id="config-string",
    ),
    pytest.param(
        {"trigger_config": {"minutes": 5, "minute": 3}},
        None,
        "trigger_config",
        "unknown key 'minute'",
        id="config-unknown-key",
    ),
    pytest.param(
        {"trigger": "cron", "trigger_config": {"hour": 9, "run_date": "2030-01-01"}},
        None,
        "trigger_config",
        "unknown key 'run_date'",
        id="config-key-of-another-trigger",
    ),
    pytest.param(
        {"trigger_config": {}}, None, "trigger_config", "needs at least one of", id="interval-empty"
    ),
    pytest.param(
        {"trigger_config": {"minutes": 0}},
        None,
        "trigger_config",
        "greater than zero",
        id="interval-zero",
    ),
    pytest.param(
        {"trigger_config": {"minutes": -5}},
        None,
        "trigger_config",
        "-5 is negative",
        id="interval-negative",
    ),
    pytest.param(
        {"trigger_config": {"minutes": "five"}},
        None,
        "trigger_config",
        "'five'",
        id="interval-text",
    ),
    pytest.param(
        {
            "trigger_config": {
                "hours": 1,
                "start_date": "2030-02-01T00:00:00",
                "end_date": "2030-01-01T00:00:00",
            }
        },
        None,
        "trigger_config",
        "is before start_date",
        id="end-before-start",
    ),
    pytest.param(
        {"trigger_config": {"hours": 1, "timezone": "Mars/Olympus_Mons"}},
        None,
        "trigger_config",
        "unknown time zone 'Mars/Olympus_Mons'",
        id="unknown-time-zone",
    ),
    pytest.param(
        {"trigger": "date", "trigger_config": {"run_date": "next tuesday"}},
        None,
        "trigger_config",
        "'next tuesday' is not an ISO 8601",
        id="unparsable-date",
    ),
    pytest.param(
        {"trigger": "date", "trigger_config": {"run_date": "2030-02-30T10:00:00"}},
        None,
        "trigger_config",
        "'2030-02-30T10:00:00' is not",
        id="impossible-date",
    ),
    pytest.param(
        {"trigger": "date", "trigger_config": {}},
        None,
        "trigger_config",
        "needs run_date",
        id="date-without-run-date",
    ),
    pytest.param(
        {"trigger": "cron", "trigger_config": {"crontab": "61 * * * *"}},
        None,
        "trigger_config",
        "61 is out of range",
        id="crontab-out-of-range",
    ),
    pytest.param(
        {"trigger": "cron", "trigger_config": {"crontab": "every day at nine"}},
        None,
        "trigger_config",
        "expected 5 fields",
        id="crontab-garbage",
    ),
    pytest.param(
        {"trigger": "cron", "trigger_config": {"crontab": "0 9 * *"}},
        None,
        "trigger_config",
        "got 4",
        id="crontab-four-fields",
    ),
    pytest.param(
        {"trigger": "cron", "trigger_config": {"crontab": "0 9 * * *", "hour": 9}},
        None,
        "trigger_config",
        "cannot be combined with hour",
        id="crontab-with-fields",
    ),
    pytest.param(
        {"trigger": "cron", "trigger_config": {"hour": 25}},
        None,
        "trigger_config",
        "(25) is higher than the maximum",
        id="cron-hour-out-of-range",
    ),
    pytest.param(
        {"trigger": "cron", "trigger_config": {"day_of_week": "funday"}},
        None,
        "trigger_config",
        "funday",
        id="cron-bad-weekday",
    ),
]


@pytest.mark.parametrize(("changes", "tasks_sched", "field", "fragment"), BAD_INPUTS)
def test_bad_input_is_refused_by_field(
    changes: dict[str, Any], tasks_sched: dict[str, Any] | None, field: str, fragment: str
) -> None:
    with override_settings(TASKS_SCHED=tasks_sched or {}):
        errors = errors_of(make(**changes))
    assert field in errors, errors
    assert any(fragment in message for message in errors[field]), errors[field]


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_of(
        make(func="os:system", args={}, kwargs=[], trigger_config={"minutes": 0}, max_instances=0)
    )
    assert set(errors) == {"func", "args", "kwargs", "trigger_config", "max_instances"}


def test_arguments_are_not_checked_against_a_refused_callable() -> None:
    errors = errors_of(make(func="tests.testapp.jobz:add", args=[1, 2, 3]))
    assert set(errors) == {"func"}


def test_duplicate_name_is_refused() -> None:
    make().save()
    assert "name" in errors_of(make())


GOOD_INPUTS = [
    pytest.param({}, None, id="defaults"),
    pytest.param({"func": "tests.testapp.jobs.noop"}, None, id="dotted-path"),
    pytest.param({"func": "tests.testapp.jobs:add", "args": [1, 2]}, None, id="args"),
    pytest.param({"func": "tests.testapp.jobs:add", "kwargs": {"a": 1, "b": 2}}, None, id="kw"),
    pytest.param(
        {"func": "tests.testapp.jobs:greet", "args": ["Ada"], "kwargs": {"greeting": "Hi"}},
        None,
        id="keyword-only",
    ),
    pytest.param(
        {"func": "tests.testapp.jobs:takes_anything", "args": [1, [2]], "kwargs": {"x": None}},
        None,
        id="varargs",
    ),
    pytest.param({"func": "tests.testapp.jobs:Maintenance.vacuum"}, None, id="staticmethod"),
    pytest.param(
        {"func": "tests.testapp.jobs.Maintenance.vacuum", "args": ["users"]},
        None,
        id="staticmethod-dotted",
    ),
    pytest.param({"func": "tests.testapp.jobs:Maintenance.rebuild"}, None, id="classmethod"),
    pytest.param({"func": "tests.outside.jobs:registered_job"}, None, id="registered"),
    pytest.param(
        {"func": "tests.outside.jobs:Tools.class_above"}, None, id="registered-classmethod"
    ),
    pytest.param(
        {"func": "tests.outside.jobs:needs_keyword", "kwargs": {"day": "mon"}},
        {"ALLOWED_MODULES": []},
        id="registered-with-nothing-else-allowed",
    ),
    pytest.param({"func": "tests.outside.jobs:unregistered_job"}, OUTSIDE, id="allowed-modules"),
    pytest.param(
        {"func": "tests.testapp.jobs:noop"}, {"ALLOWED_MODULES": ["tests"]}, id="parent-prefix"
    ),
    pytest.param({"max_instances": 3, "timeout": 60, "misfire_grace_time": None}, None, id="opt"),
    pytest.param(
        {
            "trigger_config": {
                "hours": 2,
                "start_date": "2030-01-01T00:00:00",
                "end_date": "2030-06-01T00:00:00",
                "timezone": "Europe/Berlin",
                "jitter": 30,
            }
        },
        None,
        id="interval-full",
    ),
    pytest.param(
        {"trigger": "cron", "trigger_config": {"hour": 9, "minute": 30, "day_of_week": "mon-fri"}},
        None,
        id="cron-fields",
    ),
    pytest.param(
        {"trigger": "cron", "trigger_config": {"crontab": "*/15 9-17 * * mon-fri"}},
        None,
        id="crontab",
    ),
    pytest.param(
        {"trigger": "cron", "trigger_config": {"crontab": "@daily", "timezone": "Asia/Tokyo"}},
        None,
        id="crontab-alias",
    ),
    pytest.param(
        {"trigger": "date", "trigger_config": {"run_date": "2030-01-01T09:00:00+01:00"}},
        None,
        id="date",
    ),
    pytest.param(
        {"trigger": "date", "trigger_config": {"run_date": "2001-01-01T09:00:00"}},
        None,
        id="date-in-the-past",
    ),
]


@pytest.mark.parametrize(("changes", "tasks_sched"), GOOD_INPUTS)
def test_good_input_is_accepted(
    changes: dict[str, Any], tasks_sched: dict[str, Any] | None
) -> None:
    with override_settings(TASKS_SCHED=tasks_sched or {}):
        make(**changes).full_clean()
