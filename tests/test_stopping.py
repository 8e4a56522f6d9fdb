"""A call in the main thread is stopped when its run is ended elsewhere (``stopping``).

Here in pytest's main thread, as a fleet's worker calls its runs; ``tests/test_fleet.py`` shows
it with real ``db_worker`` and Celery workers.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from django.utils import timezone

from django_tasks_sched import stopping
from django_tasks_sched.execution import ENDED_ELSEWHERE, call_stoppable
from django_tasks_sched.liveness import alive, liveness
from django_tasks_sched.models import TaskRun
from tests.factories import make_task
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def running(tmp_path: Path, seconds: float) -> TaskRun:
    task = make_task(func="tests.testapp.jobs:trace_span", args=[str(tmp_path / "trace"), seconds])
    return TaskRun.objects.create(
        task=task, status=TaskRun.Status.RUNNING, started_at=timezone.now(), worker_id="here"
    )


def test_a_call_is_stopped_in_its_sleep_when_its_run_is_ended_elsewhere(tmp_path: Path) -> None:
    run = running(tmp_path, 60)
    trace = tmp_path / "trace"

    def end_it_elsewhere() -> None:
        wait_until(lambda: trace.exists(), 10)  # the function is called, and sleeps
        TaskRun.objects.filter(pk=run.pk).update(status=TaskRun.Status.CANCELLED)
        liveness().beat()  # what the liveness thread does at its next beat

    other = threading.Thread(target=end_it_elsewhere)
    other.start()
    began = time.monotonic()
    with alive(run.pk):
        outcome = call_stoppable(run)
    other.join()
    assert time.monotonic() - began < 30  # not the 60 s sleep
    assert (outcome.status, outcome.error) == ("CANCELLED", ENDED_ELSEWHERE)
    assert trace.read_text().split() == ["start", str(run.pk)]  # its "end" never written


def test_a_call_that_ends_first_is_left_alone_and_the_signal_after_it_does_nothing(
    tmp_path: Path,
) -> None:
    run = running(tmp_path, 0)
    with alive(run.pk):
        outcome = call_stoppable(run)
    assert outcome.status == "SUCCESSFUL"
    # The handler stays (a signal sent as a call ends must not kill the process), disarmed.
    assert signal.getsignal(signal.SIGUSR2) is stopping._handle
    stopping._handle(signal.SIGUSR2, None)


def test_outside_the_main_thread_a_call_cannot_be_stopped_and_runs_as_usual(
    tmp_path: Path,
) -> None:
    run = running(tmp_path, 0)
    seen: list[object] = []

    def call() -> None:
        seen.append(stopping.can_stop())
        seen.append(call_stoppable(run).status)

    worker = threading.Thread(target=call)
    worker.start()
    worker.join()
    assert stopping.can_stop()  # here, in the main thread
    assert seen == [False, "SUCCESSFUL"]
