"""Fixtures shared by every test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from django_tasks_sched.service.jobs import Jobs
from django_tasks_sched.service.runner import Options, SchedulerService
from tests.browser import page  # noqa: F401  (the browser tests' logged-in page)
from tests.factories import paused_jobs
from tests.processes import SchedulerProcess


@pytest.fixture(autouse=True)
def _no_scheduler_outlives_its_test() -> Iterator[None]:
    yield
    SchedulerProcess.kill_leftovers()


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[SchedulerProcess]:
    """A ready ``runscheduler`` process; it must exit 0 on SIGTERM after the test.

    A test that stops it itself checks the exit status it expects; one that it stops here
    must not have crashed meanwhile.
    """
    proc = SchedulerProcess(tmp_path / "scheduler.log")
    proc.wait_ready()
    yield proc
    if proc in SchedulerProcess.started:
        assert proc.stop() == 0, proc.output()


@pytest.fixture
def service() -> Iterator[SchedulerService]:
    """A started scheduler service in the test's own process (no loop: the test drives it)."""
    service = SchedulerService(Options.from_settings())
    service.start()
    yield service
    service.shutdown()


@pytest.fixture
def jobs() -> Iterator[Jobs]:
    """A paused job store: what the reconciler's passes put in it is read back, never fired."""
    with paused_jobs() as jobs:
        yield jobs
