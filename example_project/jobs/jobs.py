"""The callables the example tasks run: small, honest jobs a real project might schedule.

Each is a plain function. ``example_project.jobs`` is one of the project's own apps (it lives
under ``BASE_DIR``), so the default callable policy allows these without any registration.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone


def prune_expired_sessions() -> dict[str, int]:
    """Delete expired sessions, exactly as ``manage.py clearsessions`` does."""
    from django.contrib.sessions.models import Session

    # Counted first for the run record; only the database session backend keeps rows to count.
    expired = Session.objects.filter(expire_date__lt=timezone.now()).count()
    call_command("clearsessions")
    return {"expired_sessions_removed": expired}


def write_heartbeat(message: str = "alive") -> str:
    """Append one timestamped line to ``settings.HEARTBEAT_FILE`` and return it."""
    path = Path(getattr(settings, "HEARTBEAT_FILE", Path(settings.BASE_DIR) / "heartbeat.log"))
    line = f"{timezone.now().isoformat()} {socket.gethostname()} pid={os.getpid()} {message}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.write(line + "\n")
    return line


def daily_report() -> dict[str, Any]:
    """Count users and recent activity; the returned dict is stored as the run's return value."""
    users = get_user_model().objects.all()
    since = timezone.now() - timedelta(days=1)
    return {
        "generated_at": timezone.now().isoformat(),
        "users": users.count(),
        "active_users": users.filter(is_active=True).count(),
        "staff_users": users.filter(is_staff=True).count(),
        "logged_in_last_24h": users.filter(last_login__gte=since).count(),
        "joined_last_24h": users.filter(date_joined__gte=since).count(),
    }


def nap(seconds: float = 3.0) -> float:
    """Sleep a little, to show a run in the RUNNING state and its duration."""
    time.sleep(seconds)
    return seconds


def always_fails(message: str = "This task fails on purpose, to show a failed run.") -> None:
    """Raise, to show how a failure is recorded (status, error and traceback)."""
    raise RuntimeError(message)
