"""Declared tasks end to end: declared -> row -> fired by a real ``runscheduler`` -> recorded.

The scheduler and ``synctasks`` subprocesses run with ``tests.settings_declared``: the test
settings plus ``tests.declaring`` (``@scheduler.task`` functions) and a ``TASKS_SCHED`` passed
as JSON, so each test declares exactly what it needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from django_tasks_sched import scheduler
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.pyproject import assigned_config
from tests import processes
from tests.history import fires_of_a_twin
from tests.processes import SchedulerProcess, manage, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

Declare = Callable[[dict[str, Any]], None]


@pytest.fixture
def declare(monkeypatch: pytest.MonkeyPatch) -> Declare:
    """Make every subprocess of the test use ``tests.settings_declared`` with this TASKS_SCHED."""

    def use(tasks_sched: dict[str, Any]) -> None:
        original = processes.subprocess_env
        env = {
            "DJANGO_SETTINGS_MODULE": "tests.settings_declared",
            "DTS_TEST_TASKS_SCHED": json.dumps(tasks_sched),
        }
        monkeypatch.setattr(
            processes, "subprocess_env", lambda **extra: original(**{**env, **extra})
        )

    return use


def successful(name: str) -> TaskRun | None:
    return TaskRun.objects.filter(task__name=name, status="SUCCESSFUL").first()


def test_decorator_and_settings_tasks_are_synced_at_start_and_fired(
    declare: Declare, tmp_path: Path
) -> None:
    # No module is allowed by prefix: only what @scheduler.task / @register allow-list runs.
    declare(
        {
            "ALLOWED_MODULES": [],
            "TASKS": [
                {
                    "id": "settings-tick",
                    "func": "tests.declaring.jobs:double",
                    "args": [21],
                    "trigger": "interval",
                    "seconds": 1,
                }
            ],
        }
    )
    proc = SchedulerProcess(tmp_path / "scheduler.log")
    try:
        proc.wait_ready()
        decorated = wait_until(lambda: successful("tests.declaring.jobs:heartbeat"), 10, proc)
        from_settings = wait_until(lambda: successful("settings-tick"), 10, proc)
    finally:
        proc.stop()
    assert "Declared tasks synced: 3 created" in proc.log_path.read_text()
    assert decorated.result() == "beat"
    assert from_settings.result() == 42
    assert decorated.task.source == Task.Source.DECORATOR
    assert from_settings.task.source == Task.Source.SETTINGS
    nightly = Task.objects.get(name="declaring-nightly")
    assert (nightly.trigger_config, nightly.misfire_grace_time) == ({"hour": 3, "minute": 15}, 300)
    assert nightly.description == "Nightly"


def test_pyproject_task_fires_at_its_hashed_second(declare: Declare, tmp_path: Path) -> None:
    # Pick an id whose assigned second comes soon, so the test need not wait for a minute.
    now = datetime.now(timezone.utc).second
    job_id = next(
        f"soon-{i}"
        for i in range(10_000)
        if 8 <= (assigned_config(f"soon-{i}", "minute")["second"] - now) % 60 <= 14
    )
    second = assigned_config(job_id, "minute")["second"]
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        f'[tool.scheduled.{job_id}]\nevery = "minute"\nentrypoint = "tests.testapp.jobs:noop"\n'
    )
    declare({"PYPROJECT": str(pyproject)})
    proc = SchedulerProcess(tmp_path / "scheduler.log")
    try:
        proc.wait_ready()
        # Normally within 15 s; a fire missed on a slow machine comes round a minute later.
        run = wait_until(lambda: successful(job_id), 80, proc)
    finally:
        proc.stop()
    assert run.scheduled_for is not None
    assert run.scheduled_for.second == second
    task = Task.objects.get(name=job_id)
    assert task.source == Task.Source.PYPROJECT
    assert task.trigger_config == {"second": second, "timezone": "UTC"}
    assert f"every minute at second {second:02d}" in task.source_ref


def test_facade_task_is_fired_and_run_handles_wait(tmp_path: Path) -> None:
    scheduler.add_job("facade-tick", "tests.testapp.jobs:add", "interval", seconds=1, args=[2, 3])
    proc = SchedulerProcess(tmp_path / "scheduler.log")
    try:
        proc.wait_ready()
        assert wait_until(lambda: successful("facade-tick"), 10, proc).result() == 5
        # The Jobify-style handle: queue a run for the scheduler process, wait, read the value.
        run = scheduler.run_job("facade-tick", inline=False)
        assert run.wait(timeout=10).result() == 5
        assert run.worker_id.startswith("scheduler:")
    finally:
        proc.stop()


def test_admin_deactivation_survives_synctasks_and_a_restart(
    declare: Declare, tmp_path: Path
) -> None:
    declare(
        {
            "TASKS": [
                {
                    "id": "clobber",
                    "func": "tests.testapp.jobs:noop",
                    "trigger": "interval",
                    "seconds": 1,
                }
            ]
        }
    )
    result = manage("synctasks")
    assert result.returncode == 0, result.stderr
    assert "Created clobber" in result.stdout
    task = Task.objects.get(name="clobber")
    assert task.active

    # The admin switches it off with the changelist action and notes why.
    admin = Client()
    admin.force_login(User.objects.create_superuser("admin", "a@example.com", "pw"))
    response = admin.post(
        reverse("admin:django_tasks_sched_task_changelist"),
        {"action": "deactivate_tasks", "_selected_action": [task.pk], "apply": "yes"},
    )
    assert response.status_code == 302
    Task.objects.filter(pk=task.pk).update(inactive_reason="Off during the migration")

    result = manage("synctasks")
    assert result.returncode == 0, result.stderr
    # Unchanged: the declaration's fields match; the switch and the note are the admin's.
    assert "0 created, 0 updated, 0 retired, 3 declared tasks unchanged." in result.stdout
    twin = Task.objects.create(
        name="twin",
        func="tests.testapp.jobs:noop",
        trigger="interval",
        trigger_config={"seconds": 1},
    )
    proc = SchedulerProcess(tmp_path / "scheduler.log")
    try:
        proc.wait_ready()
        fires_of_a_twin(twin, proc)  # an active task would have fired too
    finally:
        proc.stop()
    task.refresh_from_db()
    assert not task.active
    assert task.inactive_reason == "Off during the migration"
    assert not task.runs.exists()
    assert "0 created [], 0 updated [], 0 retired [], 3 unchanged" in proc.log_path.read_text()
