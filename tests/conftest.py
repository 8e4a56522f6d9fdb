"""Fixtures shared by every test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.processes import SchedulerProcess


@pytest.fixture(autouse=True)
def _no_scheduler_outlives_its_test() -> Iterator[None]:
    yield
    SchedulerProcess.kill_leftovers()
