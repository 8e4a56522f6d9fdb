"""A call in the main thread is stopped when its run is ended elsewhere (``stopping``).

Here in pytest's main thread, as a fleet's worker calls its runs; ``tests/test_fleet.py`` shows
it with real ``db_worker`` and Celery workers.
"""

from __future__ import annotations

import itertools
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


NAMES = itertools.count()


def running(tmp_path: Path, seconds: float) -> TaskRun:
    task = make_task(
        f"job-{next(NAMES)}",
        func="tests.testapp.jobs:trace_span",
        args=[str(tmp_path / "trace"), seconds],
    )
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


def test_a_signal_after_the_call_does_nothing(tmp_path: Path) -> None:
    run = running(tmp_path, 0)
    with alive(run.pk):
        outcome = call_stoppable(run)
    assert outcome.status == "SUCCESSFUL"
    # The handler stays (a stop sent as a call ends must not meet the default action, which
    # would end this process), and a signal that comes late raises nothing.
    assert signal.getsignal(signal.SIGUSR2) is stopping._handle
    signal.raise_signal(signal.SIGUSR2)


def test_a_sigusr2_that_is_not_a_stop_goes_to_the_previous_handler(tmp_path: Path) -> None:
    received: list[int] = []
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))
    try:
        run = running(tmp_path, 0)
        run.task.func = "tests.testapp.jobs:signals_itself"
        run.task.args = []
        with alive(run.pk):
            outcome = call_stoppable(run)
    finally:
        signal.signal(signal.SIGUSR2, before)
    assert (outcome.status, outcome.return_value) == ("SUCCESSFUL", "not stopped")
    assert received == [signal.SIGUSR2]


def test_a_function_that_takes_sigusr2_over_is_not_stopped_and_the_next_call_is(
    tmp_path: Path,
) -> None:
    run = running(tmp_path, 0)
    run.task.func, run.task.args = "tests.testapp.jobs:replaces_sigusr2", []
    with alive(run.pk):
        assert call_stoppable(run).status == "SUCCESSFUL"
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN
    # A stop now would not reach us: none is sent (the run goes on, as in a thread).
    stop = stopping._Stop()
    stop()
    assert not stop.sent
    # The next stoppable call puts the handler back.
    (tmp_path / "again").mkdir()
    test_a_call_is_stopped_in_its_sleep_when_its_run_is_ended_elsewhere(tmp_path / "again")


def test_a_stop_of_an_outer_run_waits_for_the_inner_one_to_end(tmp_path: Path) -> None:
    outer, inner = running(tmp_path, 0), running(tmp_path, 0)
    finished_inner = False

    def end_outer_elsewhere() -> None:
        TaskRun.objects.filter(pk=outer.pk).update(status=TaskRun.Status.CANCELLED)
        liveness().beat()

    with alive(outer.pk), pytest.raises(stopping.RunStopped), stopping.stoppable(outer.pk):  # noqa: PT012
        with alive(inner.pk), stopping.stoppable(inner.pk):
            other = threading.Thread(target=end_outer_elsewhere)
            other.start()
            other.join()
            time.sleep(0.1)  # the signal's handler runs here, and lets the inner run be
            finished_inner = True
        raise AssertionError("the outer run's stop should have been raised by now")
    assert finished_inner


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
