"""runscheduler --executor process: functions run in worker processes, which a timeout kills."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from django_tasks_sched.models import Task, TaskRun
from tests.processes import SchedulerProcess as Proc
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

JOBS = "tests.testapp.jobs"


def later(name: str, func: str, **fields: Any) -> Task:
    """A task that only runs when asked to (run_now)."""
    return Task.objects.create(
        name=name,
        func=f"{JOBS}:{func}",
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
        **fields,
    )


def finished(task: Task, timeout: float = 30) -> TaskRun:
    run = task.run_now()
    run.wait(timeout=timeout)
    return run


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie nobody has reaped yet counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def started_process(log: Path, *args: str) -> Proc:
    """A process-executor scheduler whose worker processes have each run once (spawned)."""
    proc = Proc(log, "--executor", "process", *args)
    proc.wait_ready()
    assert "worker processes" in proc.output()
    warm = later("warm-up", "process_id")
    assert finished(warm, timeout=60).status == TaskRun.Status.SUCCESSFUL
    return proc


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[Proc]:
    proc = started_process(tmp_path / "scheduler.log", "--threads", "2")
    yield proc
    assert proc.stop() == 0


def test_functions_run_in_worker_processes_with_django_set_up(scheduler: Proc) -> None:
    pid = finished(later("pid", "process_id"))
    orm = finished(later("orm", "count_tasks"))
    logs = finished(later("logs", "log_lines", args=[3]))
    for run in (pid, orm, logs):
        assert run.status == TaskRun.Status.SUCCESSFUL, run.error
    # Not in the scheduler: in a process of its own, where the ORM works as anywhere else.
    assert pid.return_value != scheduler.proc.pid
    assert isinstance(pid.return_value, int)
    assert alive(pid.return_value)
    assert orm.return_value == 3  # warm-up, pid and orm: the rows it ran after
    # The run's own log output is captured in the worker process, as in a thread.
    assert "line 2" in logs.log
    # The bookkeeping is the scheduler's: its id, its "started" and "finished" lines.
    assert f":{scheduler.proc.pid}:" in pid.worker_id
    assert f"Run {pid.pk} of task 'pid' finished: SUCCESSFUL" in scheduler.output()


def test_a_run_past_its_timeout_is_killed_and_its_worker_replaced(tmp_path: Path) -> None:
    # One worker process: the run after the timeout can only run in its replacement.
    proc = started_process(tmp_path / "scheduler.log", "--threads", "1")
    trace = tmp_path / "pid"
    hang = later("hang", "record_pid_and_sleep", args=[str(trace), 600], timeout=3)
    run = hang.run_now()
    pid = int(wait_until(lambda: trace.exists() and trace.read_text(), 20, proc))
    run.wait(timeout=30)
    assert run.status == TaskRun.Status.TIMED_OUT
    # Recorded by the worker's thread, which acts before the watchdog's margin is up.
    assert "timeout of 3s" in run.error
    assert "its worker process was killed" in run.error
    # Really stopped, unlike a thread: the process that ran the function is gone.
    wait_until(lambda: not alive(pid), 5, proc)
    after = finished(later("after", "process_id"))
    assert after.status == TaskRun.Status.SUCCESSFUL
    assert after.return_value != pid
    hang.refresh_from_db()
    assert hang.consecutive_failures == 1
    assert f"worker process {pid} killed" in proc.output()
    assert proc.stop() == 0


def test_a_worker_process_that_dies_fails_only_its_run(scheduler: Proc) -> None:
    died = finished(later("dies", "exit_process", args=[7]))
    assert died.status == TaskRun.Status.FAILED
    assert "exited with code 7" in died.error
    exited = finished(later("sys-exit", "raise_system_exit"))
    assert exited.status == TaskRun.Status.FAILED
    assert exited.error == "SystemExit: 3"
    # Both worker slots still serve runs.
    for name in ("next-1", "next-2"):
        assert finished(later(name, "process_id")).status == TaskRun.Status.SUCCESSFUL


def test_runs_past_the_grace_period_are_killed_at_shutdown(tmp_path: Path) -> None:
    proc = started_process(tmp_path / "scheduler.log", "--threads", "1", "--grace-period", "0.5")
    trace = tmp_path / "pid"
    run = later("hang", "record_pid_and_sleep", args=[str(trace), 600]).run_now()
    pid = int(wait_until(lambda: trace.exists() and trace.read_text(), 20, proc))
    assert proc.stop(signal.SIGTERM, timeout=20) == 0
    run.refresh_from_db()
    assert run.status == TaskRun.Status.INTERRUPTED
    assert "worker process was stopped" in run.error
    assert not alive(pid)


def test_worker_processes_end_with_a_killed_scheduler(tmp_path: Path) -> None:
    proc = started_process(tmp_path / "scheduler.log", "--threads", "1")
    trace = tmp_path / "pid"
    later("hang", "record_pid_and_sleep", args=[str(trace), 600]).run_now()
    pid = int(wait_until(lambda: trace.exists() and trace.read_text(), 20, proc))
    proc.stop(signal.SIGKILL)
    # Busy in the function, it still notices its scheduler is gone, within a second or so.
    wait_until(lambda: not alive(pid), 10)
