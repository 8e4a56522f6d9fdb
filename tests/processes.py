"""Spawning real ``manage.py`` processes against the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    # During tests the connection's NAME is the test database's.
    env["DTS_SUBPROCESS_DB_NAME"] = str(connection.settings_dict["NAME"])
    env.update(extra)
    return env


def manage(*args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run a management command to completion in a new process."""
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=subprocess_env(**extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_python(code: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter of the test project (``extra``: environment)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(**extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


class SchedulerProcess:
    """A ``runscheduler`` subprocess; its output goes to a log file read on failure.

    Every instance is tracked until stopped, so a test that fails before its ``stop()`` does not
    leave a scheduler running (tests/conftest.py kills leftovers after each test).
    """

    started: ClassVar[set[SchedulerProcess]] = set()

    def __init__(
        self,
        log_path: Path,
        *args: str,
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        """``settings``: ``TASKS_SCHED`` keys for this process only (see tests/settings.py);
        ``env``: more environment variables for it; ``command``: another program than
        ``manage.py runscheduler`` (a fleet's worker), given ``args`` the same way."""
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115  (closed in stop())
        extra = {"DTS_TEST_TASKS_SCHED": json.dumps(settings)} if settings else {}
        extra.update(env or {})
        command = command or ["-m", "django", "runscheduler", "--poll-interval", "0.1"]
        self.proc = subprocess.Popen(
            [sys.executable, *command, *args],
            env=subprocess_env(**extra),
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        SchedulerProcess.started.add(self)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(lambda: "ready in" in self.output(), timeout, self)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        SchedulerProcess.started.discard(self)
        return code

    @classmethod
    def kill_leftovers(cls) -> None:
        for proc in list(cls.started):
            proc.stop(signal.SIGKILL, timeout=10)


#: Settings for scheduler processes that must notice a dead peer (or a dead run) in seconds.
FAST_HEARTBEAT = {"HEARTBEAT_INTERVAL": 0.5, "HEARTBEAT_TIMEOUT": 3}


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10, proc: SchedulerProcess | None = None
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with the process log."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            log = proc.output() if proc else ""
            raise AssertionError(
                f"condition not met within {timeout}s\n--- scheduler log ---\n{log}"
            )
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"scheduler exited with {proc.proc.returncode}\n{proc.output()}")
        time.sleep(0.05)


def db_worker(
    path: Path, settings: dict[str, Any] | None = None, env: dict[str, str] | None = None
) -> SchedulerProcess:
    """A django-tasks-db worker on this test run's queue (started; wait for its first line)."""
    from django.conf import settings as django_settings

    return SchedulerProcess(
        path,
        "--queue-name",
        django_settings.FLEET_QUEUE,
        "--backend",
        "db",
        "--interval",
        "0.1",
        "--no-startup-delay",
        "--no-reload",
        "--verbosity",
        "2",
        settings=settings,
        env=env,
        command=["-m", "django", "db_worker"],
    )
