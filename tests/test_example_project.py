"""The example project works: its settings load, its checks pass, its example tasks are valid.

Everything runs in subprocesses with ``DJANGO_SETTINGS_MODULE=example_project.settings`` against a
fresh SQLite file, because this test process is configured with ``tests.settings``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Runs ``python *args`` in the example project's environment and returns its stdout.
Runner = Callable[..., str]

# Run in the child after loadexampletasks: reports what the rows look like and validates each.
INSPECT = """
import json
import django
django.setup()
from django_tasks_sched.models import Task
tasks = []
for task in Task.objects.order_by("name"):
    task.full_clean()
    tasks.append({
        "name": task.name,
        "trigger": task.trigger,
        "config": task.trigger_config,
        "next_run_time": task.next_run_time.isoformat() if task.next_run_time else None,
        "fire_times": len(task.next_fire_times(count=3)),
    })
print(json.dumps(tasks))
"""


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'example.sqlite3'}",
        "HEARTBEAT_FILE": str(tmp_path / "heartbeat.log"),
        "PYTHONPATH": str(ROOT),
    }

    def run_python(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        return proc.stdout

    return run_python


def test_settings_load_and_checks_pass(run: Runner) -> None:
    run("manage.py", "check", "--fail-level", "WARNING")
    out = run("manage.py", "makemigrations", "--check", "--dry-run")
    assert "No changes detected" in out


def test_loadexampletasks_creates_valid_tasks_idempotently(run: Runner) -> None:
    run("manage.py", "migrate", "--noinput", "-v", "0")
    first = run("manage.py", "loadexampletasks")
    assert "Created 5 task(s)" in first

    tasks = json.loads(run("-c", INSPECT))
    assert {t["trigger"] for t in tasks} == {"date", "interval", "cron"}
    assert any("crontab" in t["config"] for t in tasks), "no crontab example"
    assert any("timezone" in t["config"] for t in tasks), "no example with a time zone"
    recurring = [t for t in tasks if t["trigger"] != "date"]
    assert all(t["next_run_time"] and t["fire_times"] == 3 for t in recurring), tasks

    second = run("manage.py", "loadexampletasks")
    assert "nothing changed" in second
    assert len(json.loads(run("-c", INSPECT))) == len(tasks)

    assert "Reset 5 task(s)" in run("manage.py", "loadexampletasks", "--reset")
