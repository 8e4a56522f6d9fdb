"""The example project works: settings, checks, example tasks, and the demo script end to end.

Everything runs in subprocesses with ``DJANGO_SETTINGS_MODULE=example_project.settings`` against a
fresh SQLite file, because this test process is configured with ``tests.settings``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from urllib.request import Request, urlopen

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def successful_runs(database: Path, task: str) -> int:
    """SUCCESSFUL runs of ``task`` in the demo's SQLite file, read without Django."""
    if not database.exists():
        return 0
    with closing(sqlite3.connect(database, timeout=5)) as db:
        try:
            (count,) = db.execute(
                "SELECT count(*) FROM django_tasks_sched_taskrun r"
                " JOIN django_tasks_sched_task t ON t.id = r.task_id"
                " WHERE t.name = ? AND r.status = 'SUCCESSFUL'",
                (task,),
            ).fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return 0
    return int(count)


def test_demo_serves_the_admin_and_fires_example_tasks(tmp_path: Path) -> None:
    """The README's first command: admin up, scheduler beside it, runs recorded, clean stop."""
    database = tmp_path / "demo.sqlite3"
    port = free_port()
    env = {
        **os.environ,
        "VENV": str(Path(sys.executable).parent.parent),
        "DATABASE_URL": f"sqlite:///{database}",
        "HEARTBEAT_FILE": str(tmp_path / "heartbeat.log"),
        "DEMO_PORT": str(port),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            ["bash", "scripts/demo.sh"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        login_page = ""
        while time.monotonic() < deadline and demo.poll() is None:
            if not login_page:
                try:
                    with urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=5) as page:
                        login_page = page.read().decode()
                except OSError:
                    pass
            if login_page and successful_runs(database, "heartbeat") >= 1:
                break
            time.sleep(0.5)
        output = log.read_text()
        assert "Password   admin" in output, output
        assert 'name="username"' in login_page, output
        assert successful_runs(database, "heartbeat") >= 1, output
        assert (tmp_path / "heartbeat.log").read_text().strip(), output
        # The README's REST API line: the demo user over HTTP Basic.
        api = Request(f"http://127.0.0.1:{port}/scheduler/jobs")
        api.add_header("Authorization", "Basic " + base64.b64encode(b"admin:admin").decode())
        with urlopen(api, timeout=10) as page:
            jobs = json.loads(page.read())
        assert "heartbeat" in [job["id"] for job in jobs], jobs
    finally:
        # Ctrl-C in a terminal: SIGINT to the whole foreground group, scheduler included.
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=60)
    output = log.read_text()
    assert "Stop requested" in output, output
    assert re.search(r"Scheduler \S+ stopped", output), output
