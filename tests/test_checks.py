"""System checks: override one setting, run the checks, assert the exact IDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.checks import registry, run_checks
from django.core.management import call_command
from django.test import override_settings

from django_tasks_sched.checks import TAG, check_settings
from django_tasks_sched.conf import DEFAULTS


def check_ids(**overrides: Any) -> list[str]:
    with override_settings(**overrides):
        return [message.id or "" for message in run_checks(tags=[TAG])]


def sched(**keys: Any) -> dict[str, Any]:
    return {"TASKS_SCHED": keys}


# Django 6 runs the model checks that ask the database (e.g. its version) under `check` too.
@pytest.mark.django_db
def test_the_test_settings_pass() -> None:
    assert check_ids() == []
    call_command("check", "--fail-level", "WARNING")


def test_the_checks_are_registered_under_their_tag() -> None:
    assert registry.registry.tag_exists(TAG)
    assert check_settings in registry.registry.get_checks()


def test_missing_setting_passes() -> None:
    with override_settings():
        from django.conf import settings

        del settings.TASKS_SCHED
        assert [m.id for m in run_checks(tags=[TAG])] == []


@pytest.mark.parametrize("value", [["ALLOWED_MODULES"], "ALLOWED_MODULES", None, 1])
def test_e001_setting_not_a_dict(value: Any) -> None:
    assert check_ids(TASKS_SCHED=value) == ["django_tasks_sched.E001"]


def test_w001_unknown_key_suggests_the_closest() -> None:
    with override_settings(TASKS_SCHED={"ALLOWED_MODULE": ["tests"], "COLOUR": "red"}):
        messages = run_checks(tags=[TAG])
    assert [m.id for m in messages] == ["django_tasks_sched.W001", "django_tasks_sched.W001"]
    typo, unrelated = messages
    assert "'ALLOWED_MODULE'" in typo.msg
    assert typo.hint is not None
    assert typo.hint.startswith("Did you mean 'ALLOWED_MODULES'?")
    assert f"Valid keys: {', '.join(sorted(DEFAULTS))}." in typo.hint
    assert unrelated.hint is not None
    assert "Did you mean" not in unrelated.hint


@pytest.mark.parametrize(
    "value",
    [
        "tests.testapp",  # a bare string, the usual slip
        {"tests.testapp"},
        [1],
        [""],
        ["tests testapp"],
        ["tests.testapp:jobs"],
        ["tests.*"],
        ["tests..testapp"],
        ["tests.class"],
        ["tests.testapp", None],
    ],
)
def test_e002_allowed_modules_not_a_list_of_module_names(value: Any) -> None:
    assert check_ids(**sched(ALLOWED_MODULES=value)) == ["django_tasks_sched.E002"]


@pytest.mark.parametrize("value", [["tests.testapp"], ("tests", "reports.jobs"), [], None])
def test_allowed_modules_well_formed(value: Any) -> None:
    assert check_ids(**sched(ALLOWED_MODULES=value)) == []


@pytest.mark.parametrize(
    "value",
    [
        ["os"],
        ["subprocess"],
        ["builtins"],
        ["tests.testapp", "importlib"],
        ["django"],
        ["django.core.management"],
        ["django_tasks_sched"],
    ],
)
def test_w002_allowed_modules_admit_outside_code(value: list[str]) -> None:
    assert check_ids(**sched(ALLOWED_MODULES=value)) == ["django_tasks_sched.W002"]


@pytest.mark.parametrize("value", ["jobs", {"id": "a", "func": "x:y"}, 3])
def test_e003_tasks_not_a_list(value: Any) -> None:
    assert check_ids(**sched(TASKS=value)) == ["django_tasks_sched.E003"]


def test_e003_one_error_per_bad_task() -> None:
    tasks = [
        {"id": "ok", "func": "tests.testapp.jobs:noop", "trigger": "interval", "minutes": 5},
        "not a dict",
        {"id": "no-func"},
        {"func": "tests.testapp.jobs:noop"},
        {"id": "", "func": ""},
    ]
    with override_settings(**sched(TASKS=tasks)):
        messages = run_checks(tags=[TAG])
    assert [m.id for m in messages] == ["django_tasks_sched.E003"] * 4
    assert [m.msg for m in messages] == [
        "TASKS_SCHED['TASKS'][1] must be a dict, not str.",
        "TASKS_SCHED['TASKS'][2] has no 'func'.",
        "TASKS_SCHED['TASKS'][3] has no 'id'.",
        "TASKS_SCHED['TASKS'][4] has no 'id' and no 'func'.",
    ]


@pytest.mark.parametrize("value", [[], (), [{"id": "a", "func": "tests.testapp.jobs:noop"}]])
def test_tasks_well_formed(value: Any) -> None:
    assert check_ids(**sched(TASKS=value)) == []


@pytest.mark.parametrize("value", [42, ["pyproject.toml"], b"pyproject.toml"])
def test_e004_pyproject_not_a_path(value: Any) -> None:
    assert check_ids(**sched(PYPROJECT=value)) == ["django_tasks_sched.E004"]


def test_pyproject_as_str_or_path(tmp_path: Path) -> None:
    file = tmp_path / "pyproject.toml"
    file.write_text("[tool.scheduled]\n")
    assert check_ids(**sched(PYPROJECT=file)) == []
    assert check_ids(**sched(PYPROJECT=str(file))) == []
    assert check_ids(**sched(PYPROJECT=None)) == []


def test_w003_pyproject_points_nowhere(tmp_path: Path) -> None:
    assert check_ids(**sched(PYPROJECT=tmp_path / "nope.toml")) == ["django_tasks_sched.W003"]
    assert check_ids(**sched(PYPROJECT=tmp_path)) == ["django_tasks_sched.W003"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("THREADS", 0),
        ("THREADS", 2.5),
        ("THREADS", "10"),
        ("THREADS", True),
        ("POLL_INTERVAL", 0),
        ("POLL_INTERVAL", -1),
        ("POLL_INTERVAL", None),
        ("RECONCILE_INTERVAL", "60"),
        ("HEARTBEAT_INTERVAL", 0),
        ("HEARTBEAT_TIMEOUT", []),
        ("SHUTDOWN_GRACE_PERIOD", -0.5),
        ("RUN_LOG_LIMIT", -1),
        ("RUN_LOG_LIMIT", 1e6),
    ],
)
def test_e006_numbers_out_of_range(key: str, value: Any) -> None:
    assert check_ids(**sched(**{key: value})) == ["django_tasks_sched.E006"]


@pytest.mark.parametrize("key", ["MAIL_ADMINS_ON_FAILURE", "SHARE_WINDOW"])
@pytest.mark.parametrize("value", ["false", 0, 1, None])
def test_e007_flags_must_be_booleans(key: str, value: Any) -> None:
    assert check_ids(**sched(**{key: value})) == ["django_tasks_sched.E007"]


@pytest.mark.parametrize("key", ["MAIL_ADMINS_ON_FAILURE", "SHARE_WINDOW"])
@pytest.mark.parametrize("value", [True, False])
def test_e007_booleans_pass(key: str, value: bool) -> None:
    assert check_ids(**sched(**{key: value})) == []


@pytest.mark.parametrize("value", ["processes", "Thread", "", None, 1])
def test_e008_executor_must_be_thread_or_process(value: Any) -> None:
    assert check_ids(**sched(EXECUTOR=value)) == ["django_tasks_sched.E008"]


@pytest.mark.parametrize("value", ["thread", "process"])
def test_e008_known_executors_pass(value: str) -> None:
    assert check_ids(**sched(EXECUTOR=value)) == []


@pytest.mark.parametrize(
    "keys",
    [
        {"THREADS": 1, "POLL_INTERVAL": 0.1, "RECONCILE_INTERVAL": 300},
        {"SHUTDOWN_GRACE_PERIOD": 0, "RUN_LOG_LIMIT": 0},
        {"HEARTBEAT_INTERVAL": 1, "HEARTBEAT_TIMEOUT": 2},
    ],
)
def test_numbers_in_range(keys: dict[str, Any]) -> None:
    assert check_ids(**sched(**keys)) == []


@pytest.mark.parametrize(
    "keys",
    [
        {"HEARTBEAT_TIMEOUT": 5},
        {"HEARTBEAT_INTERVAL": 20},
        {"HEARTBEAT_INTERVAL": 10, "HEARTBEAT_TIMEOUT": 10},
    ],
)
def test_w005_heartbeat_timeout_too_short(keys: dict[str, Any]) -> None:
    assert check_ids(**sched(**keys)) == ["django_tasks_sched.W005"]


def test_e005_use_tz_false() -> None:
    assert check_ids(USE_TZ=False) == ["django_tasks_sched.E005"]


def test_w004_no_project_app_and_no_allowed_modules(tmp_path: Path) -> None:
    assert check_ids(BASE_DIR=tmp_path) == ["django_tasks_sched.W004"]
    assert check_ids(BASE_DIR=tmp_path, **sched(ALLOWED_MODULES=["tests.testapp"])) == []


def test_several_problems_at_once() -> None:
    assert check_ids(USE_TZ=False, TASKS_SCHED="x") == [
        "django_tasks_sched.E005",
        "django_tasks_sched.E001",
    ]
    assert check_ids(
        TASKS_SCHED={"TASK": [], "ALLOWED_MODULES": "x", "TASKS": {}, "PYPROJECT": 1}
    ) == [
        "django_tasks_sched.W001",
        "django_tasks_sched.E002",
        "django_tasks_sched.E003",
        "django_tasks_sched.E004",
    ]


def test_every_message_has_a_hint(tmp_path: Path) -> None:
    with override_settings(
        USE_TZ=False,
        BASE_DIR=tmp_path,
        TASKS_SCHED={"X": 1, "TASKS": [{}], "PYPROJECT": tmp_path / "no.toml"},
    ):
        messages = run_checks(tags=[TAG])
    assert len(messages) == 5
    assert all(message.hint for message in messages)


def test_w006_a_renamed_key_still_works_and_asks_for_its_new_name() -> None:
    from django.test import override_settings

    from django_tasks_sched.conf import get_settings

    assert check_ids(**sched(FULL_SYNC_INTERVAL=5)) == ["django_tasks_sched.W006"]
    with override_settings(**sched(FULL_SYNC_INTERVAL=5)):
        assert get_settings().RECONCILE_INTERVAL == 5
    with override_settings(**sched(FULL_SYNC_INTERVAL=5, RECONCILE_INTERVAL=7)):
        assert get_settings().RECONCILE_INTERVAL == 7
    # Its value is checked as the new key's.
    ids = check_ids(**sched(FULL_SYNC_INTERVAL="60"))
    assert sorted(ids) == ["django_tasks_sched.E006", "django_tasks_sched.W006"]


def test_w006_workers_is_now_threads() -> None:
    from django.test import override_settings

    from django_tasks_sched.conf import get_settings

    assert check_ids(**sched(WORKERS=3)) == ["django_tasks_sched.W006"]
    with override_settings(**sched(WORKERS=3)):
        assert get_settings().THREADS == 3
