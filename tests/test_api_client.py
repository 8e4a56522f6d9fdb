"""An outside user's script (docs/examples/api_client.py) against a live server and scheduler.

The script knows nothing of Django: it speaks HTTP with ``requests``, as a deploy script or a
Flask-APScheduler client does. A real ``runscheduler`` process runs the job it asks for.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from django_tasks_sched.models import Task
from tests.processes import SchedulerProcess

pytest.importorskip("rest_framework")
pytest.importorskip("requests")

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "examples" / "api_client.py"


@pytest.mark.django_db(transaction=True)
def test_the_documented_client_drives_the_api(live_server: Any, tmp_path: Path) -> None:
    User.objects.create_superuser("ci-bot", password="s3cret")
    scheduler = SchedulerProcess(tmp_path / "scheduler.log")
    scheduler.wait_ready()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), f"{live_server.url}/scheduler", "ci-bot", "s3cret"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert scheduler.stop() == 0, scheduler.output()
    assert result.returncode == 0, result.stderr + scheduler.output()
    lines = result.stdout.splitlines()
    assert lines[0] == "scheduler running: True"
    assert lines[1].startswith("added nightly-report next run 20")
    assert "moved to 3" in lines
    assert any(line.endswith("SUCCESSFUL returned 5") for line in lines), lines
    assert "paused: True" in lines
    assert "resumed: True" in lines
    assert "successful runs: 1" in lines
    assert "firing paused: True" in lines
    assert lines[-1] == "removed"
    assert not Task.objects.filter(name="nightly-report").exists()
