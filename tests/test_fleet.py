"""Runs handed to worker fleets: django-tasks-db's ``db_worker`` and Celery workers, for real.

Every test here runs real processes: ``runscheduler`` claims and hands off, and workers of the
backend (``manage.py db_worker``, ``celery worker`` on Redis or RabbitMQ) run the functions.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from django_tasks_sched.models import Task, TaskRun
from tests.factories import make_task
from tests.history import fire_gaps, runs_overlapped, started_in_fire_order
from tests.processes import SchedulerProcess as Proc
from tests.processes import db_worker, run_python, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE: str = settings.FLEET_QUEUE
FAST_BEAT = {"HEARTBEAT_INTERVAL": 0.3, "HEARTBEAT_TIMEOUT": 3}
REDIS = "redis://127.0.0.1:6379/15"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def require_broker(url: str) -> None:
    """Skip a Celery test whose broker is not running here; in CI (CI=true), fail it instead.

    CI starts Redis and RabbitMQ (scripts/services.sh); a contributor's machine may lack one.
    """
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"broker {url} unreachable in CI: {exc}")
        pytest.skip(f"broker {url} unreachable ({exc}); scripts/services.sh starts it")


_worker_numbers = itertools.count(1)


def celery_worker(
    path: Path, broker: str, concurrency: int = 2, settings: dict[str, Any] | None = None
) -> Proc:
    require_broker(broker)
    return Proc(
        path,
        "worker",
        "-Q",
        QUEUE,
        "-c",
        str(concurrency),
        "--pool",
        "prefork",
        "-l",
        "info",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        # A node name of its own: two suites on one broker (CI's cells side by side) would
        # otherwise share the exclusive pidbox queue of "celery@host", and one worker dies.
        "-n",
        f"{QUEUE}-{next(_worker_numbers)}@%h",
        settings=settings,
        env={"DTS_CELERY_BROKER": broker},
        command=["-m", "celery", "-A", "tests.celery_app"],
    )


def wait_started(worker: Proc, text: str) -> None:
    wait_until(lambda: text in worker.output(), 60, worker)


def traced(path: Path, name: str = "fleet", backend: str = "db", **fields: Any) -> Task:
    fields.setdefault("trigger_config", {"seconds": 1})
    return make_task(
        name,
        func="tests.testapp.jobs:trace_run",
        args=[str(path)],
        backend=backend,
        queue_name=QUEUE,
        **fields,
    )


def executions(path: Path) -> Counter[int]:
    return Counter(int(line) for line in path.read_text().split()) if path.exists() else Counter()


def stop_all(*procs: Proc) -> None:
    for proc in procs:
        proc.stop()


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"backend": "nowhere"}, "backend", "not a backend in the TASKS setting"),
        ({"backend": "db", "queue_name": "unserved"}, "queue_name", "unserved"),
        ({"backend": "celery", "queue_name": QUEUE, "priority": 5}, "priority", "priority"),
        ({"backend": "db", "priority": 101}, "priority", "less than or equal to 100"),
        ({"backend": "db", "queue_name": "x" * 101}, "queue_name", "at most 100"),
    ],
)
def test_a_backend_refuses_what_it_cannot_run(
    fields: dict[str, Any], field: str, message: str
) -> None:
    task = Task(name="t", func="tests.testapp.jobs:noop", trigger="interval")
    task.trigger_config = {"minutes": 5}
    for name, value in fields.items():
        setattr(task, name, value)
    with pytest.raises(ValidationError) as caught:
        task.full_clean()
    assert field in caught.value.message_dict, caught.value.message_dict
    assert message in " ".join(caught.value.message_dict[field])


def test_a_backend_that_serves_the_queue_is_accepted() -> None:
    make_task(backend="db", queue_name=QUEUE, priority=10).full_clean()
    make_task("celery", backend="celery", queue_name=QUEUE).full_clean()


def test_the_admin_says_which_backend_field_is_wrong(admin_client: Any) -> None:
    from tests.test_admin import TASK_ADD, form_data

    response = admin_client.post(TASK_ADD, form_data(backend="db", queue_name="unserved"))
    assert response.status_code == 200
    assert "unserved" in response.content.decode()
    assert not Task.objects.exists()


# -- django-tasks-db --------------------------------------------------------------------------


def test_db_workers_run_each_fire_once_and_report_back(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    task = traced(trace)
    reporting = make_task(
        "reports",
        func="tests.testapp.jobs:reports_back",
        trigger_config={"seconds": 1},
        backend="db",
        queue_name=QUEUE,
    )
    workers = [db_worker(tmp_path / f"w{i}.log") for i in range(2)]
    scheduler = Proc(tmp_path / "s.log")
    try:
        scheduler.wait_ready()
        wait_until(lambda: task.runs.filter(status="SUCCESSFUL").count() >= 6, 60, scheduler)
        wait_until(lambda: reporting.runs.filter(status="SUCCESSFUL").exists(), 30, scheduler)
    finally:
        assert scheduler.stop() == 0
        stop_all(*workers)
    runs = list(task.runs.filter(status="SUCCESSFUL"))
    # Each fire ran once, on a worker, and says where.
    counts = executions(trace)
    assert all(counts[run.pk] == 1 for run in runs), counts
    assert set(counts) <= set(task.runs.values_list("pk", flat=True))
    for run in runs:
        assert run.worker_id.startswith("worker:db:"), run.worker_id
        assert run.backend == "db"
        assert run.backend_result_id
        assert run.handoffs == 1
        assert run.return_value == run.pk
    assert fire_gaps(task.runs.all()) == {1.0}
    # current_run() on the worker: the fire time, progress and meta.
    report = reporting.runs.filter(status="SUCCESSFUL").first()
    assert report is not None
    assert report.progress == 1.0
    assert report.meta == {"step": 2}
    assert report.scheduled_for is not None
    assert report.result()["scheduled_for"] == report.scheduled_for.isoformat()


def test_a_duplicated_message_runs_the_fire_once(tmp_path: Path) -> None:
    from django_tasks_sched.fleet.tasks import run_handed_off

    trace = tmp_path / "trace"
    task = traced(trace, trigger="date", trigger_config={"run_date": "2099-01-01T00:00:00"})
    run = TaskRun.objects.create(task=task, status="QUEUED", backend="db")
    # Delivered three times (a broker's redelivery, a re-send after a lease): one execution.
    for _ in range(3):
        run_handed_off.using(backend="db", queue_name=QUEUE).enqueue(run.pk, "db")
    workers = [db_worker(tmp_path / f"w{i}.log") for i in range(2)]
    try:
        wait_until(lambda: TaskRun.objects.get(pk=run.pk).status == "SUCCESSFUL", 60, workers[0])
        from django_tasks_db.models import DBTaskResult

        wait_until(lambda: not DBTaskResult.objects.filter(status="READY").exists(), 30)
    finally:
        stop_all(*workers)
    assert executions(trace) == Counter({run.pk: 1})


def test_a_worker_killed_mid_run_is_interrupted_and_retried(tmp_path: Path) -> None:
    task = make_task(
        "hangs",
        func="tests.testapp.jobs:hangs_until_retried",
        args=[0.2],
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
        backend="db",
        queue_name=QUEUE,
        max_retries=1,
    )
    workers = [db_worker(tmp_path / f"w{i}.log") for i in range(2)]
    scheduler = Proc(tmp_path / "s.log", settings=FAST_BEAT)
    try:
        scheduler.wait_ready()
        run = task.run_now()
        pid = wait_until(lambda: TaskRun.objects.get(pk=run.pk).meta.get("pid"), 60, scheduler)
        [victim] = [worker for worker in workers if worker.proc.pid == pid]
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
        # No sign of life for HEARTBEAT_TIMEOUT (3 s): INTERRUPTED, then retried elsewhere.
        wait_until(lambda: TaskRun.objects.get(pk=run.pk).status == "INTERRUPTED", 20, scheduler)
        retry = wait_until(
            lambda: task.runs.filter(attempt=2, status="SUCCESSFUL").first(), 60, scheduler
        )
    finally:
        assert scheduler.stop() == 0
        stop_all(*workers)
    run.refresh_from_db()
    assert "has not been seen alive" in run.error
    assert retry.result() == "retried"
    assert retry.worker_id != run.worker_id


def test_a_lost_message_is_sent_again_once_then_recorded(tmp_path: Path) -> None:
    from django_tasks_db.models import DBTaskResult

    task = make_task(
        "lost",
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
        backend="db",
        queue_name=QUEUE,
    )
    scheduler = Proc(tmp_path / "s.log", settings={**FAST_BEAT, "HANDOFF_LEASE": 1})
    try:
        scheduler.wait_ready()
        run = task.run_now()
        first = wait_until(lambda: TaskRun.objects.get(pk=run.pk).backend_result_id, 20, scheduler)
        # Waiting for a worker (the backend still has it): the lease is renewed, not re-sent.
        handed = TaskRun.objects.get(pk=run.pk).handed_at
        wait_until(lambda: TaskRun.objects.get(pk=run.pk).handed_at != handed, 20, scheduler)
        assert TaskRun.objects.get(pk=run.pk).handoffs == 1
        # The broker loses it: sent once more ...
        DBTaskResult.objects.filter(id=first).delete()
        # (The count is written as the run is taken, the backend's new id once it is sent.)
        resent = TaskRun.objects.filter(pk=run.pk, handoffs=2).exclude(backend_result_id=first)
        wait_until(resent.exists, 20, scheduler)
        second = TaskRun.objects.get(pk=run.pk).backend_result_id
        # ... and lost again: recorded, not re-sent for ever.
        DBTaskResult.objects.filter(id=second).delete()
        wait_until(lambda: TaskRun.objects.get(pk=run.pk).status == "MISSED", 20, scheduler)
    finally:
        assert scheduler.stop() == 0
    run.refresh_from_db()
    assert "handed to backend 'db' 2 times" in run.error
    assert run.handoffs == 2


def test_a_stopped_fleet_cannot_pile_up_work(tmp_path: Path) -> None:
    task = make_task("piles", trigger_config={"seconds": 1}, backend="db", queue_name=QUEUE)
    scheduler = Proc(tmp_path / "s.log")
    try:
        scheduler.wait_ready()
        # One run waits for a worker (max_instances=1); the fires meanwhile are recorded
        # missed for it. (A scheduler slowed by load may also coalesce two fires that came
        # due together, a miss of another kind, so the wait counts the kind it is about.)
        refused = task.runs.filter(status="MISSED", error__contains="max_instances")
        wait_until(lambda: refused.count() >= 2, 20, scheduler)
    finally:
        assert scheduler.stop() == 0
    assert task.runs.filter(status="QUEUED").count() == 1


def test_handed_off_runs_time_out_and_await_coroutines(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    slow = make_task(
        "slow",
        func="tests.testapp.jobs:trace_span",
        args=[str(trace), 6],  # well past its timeout
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
        backend="db",
        queue_name=QUEUE,
        timeout=1,
    )
    coroutine = make_task(
        "coroutine",
        func="tests.testapp.jobs:async_job",
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
        backend="db",
        queue_name=QUEUE,
    )
    workers = [db_worker(tmp_path / f"w{i}.log", FAST_BEAT) for i in range(2)]
    scheduler = Proc(tmp_path / "s.log", settings=FAST_BEAT)
    try:
        scheduler.wait_ready()
        timed = slow.run_now()
        awaited = coroutine.run_now()
        wait_until(lambda: TaskRun.objects.get(pk=awaited.pk).is_done(), 60, scheduler)
        wait_until(lambda: TaskRun.objects.get(pk=timed.pk).is_done(), 60, scheduler)
    finally:
        assert scheduler.stop() == 0
        stop_all(*workers)
    awaited.refresh_from_db()
    assert awaited.result() == "awaited"
    timed.refresh_from_db()
    assert timed.status == "TIMED_OUT"  # by the watchdog
    # ... and its call stopped in the worker's main thread, well before its end.
    assert trace.read_text().split() == ["start", str(timed.pk)]


# -- Celery -----------------------------------------------------------------------------------


@pytest.mark.parametrize("broker", [REDIS, RABBITMQ], ids=["redis", "rabbitmq"])
def test_celery_workers_run_each_fire_once(tmp_path: Path, broker: str) -> None:
    trace = tmp_path / "trace"
    task = traced(trace, backend="celery")
    worker = celery_worker(tmp_path / "celery.log", broker)
    scheduler = Proc(tmp_path / "s.log", env={"DTS_CELERY_BROKER": broker})
    try:
        wait_started(worker, "ready.")
        scheduler.wait_ready()
        wait_until(lambda: task.runs.filter(status="SUCCESSFUL").count() >= 5, 60, scheduler)
    finally:
        assert scheduler.stop() == 0
        worker.stop()
    runs = list(task.runs.filter(status="SUCCESSFUL"))
    counts = executions(trace)
    assert all(counts[run.pk] == 1 for run in runs), counts
    for run in runs:
        assert run.worker_id.startswith("worker:celery:"), run.worker_id
        assert run.backend_result_id
    assert fire_gaps(task.runs.all()) == {1.0}


def test_a_celery_worker_process_killed_mid_run_is_retried(tmp_path: Path) -> None:
    task = make_task(
        "hangs",
        func="tests.testapp.jobs:hangs_until_retried",
        args=[0.2],
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
        backend="celery",
        queue_name=QUEUE,
        max_retries=1,
    )
    worker = celery_worker(tmp_path / "celery.log", REDIS)
    scheduler = Proc(tmp_path / "s.log", settings=FAST_BEAT, env={"DTS_CELERY_BROKER": REDIS})
    try:
        wait_started(worker, "ready.")
        scheduler.wait_ready()
        run = task.run_now()
        pid = wait_until(lambda: TaskRun.objects.get(pk=run.pk).meta.get("pid"), 60, scheduler)
        os.kill(pid, signal.SIGKILL)  # the pool process running it; Celery starts another
        wait_until(lambda: TaskRun.objects.get(pk=run.pk).status == "INTERRUPTED", 20, scheduler)
        retry = wait_until(
            lambda: task.runs.filter(attempt=2, status="SUCCESSFUL").first(), 60, scheduler
        )
    finally:
        assert scheduler.stop() == 0
        worker.stop()
    assert retry.result() == "retried"
    # The killed message was given back to the broker and delivered again: it found its run
    # already claimed (then ended), and ran nothing.
    assert task.runs.count() == 2


def test_the_scheduler_needs_no_fleet_packages_without_fleet_tasks(tmp_path: Path) -> None:
    code = (
        "import sys, django; django.setup();"
        "import django_tasks_sched.service.runner, django_tasks_sched.models;"
        "from django_tasks_sched.execution import execute_run;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('celery', 'django_tasks', 'kombu')"
        " or m.startswith('django.tasks') or m.startswith('django_tasks_sched.fleet.compat')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = run_python(code, DTS_TEST_NO_FLEET="1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_stuck_run_on_a_worker_is_interrupted_and_the_failure_limit_holds(
    tmp_path: Path,
) -> None:
    task = make_task(
        "stuck",
        func="tests.testapp.jobs:beats_then_hangs",
        kwargs={"beats": 2, "interval": 0.3, "hang": 8},
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
        backend="db",
        queue_name=QUEUE,
        heartbeat_timeout=2,
        max_consecutive_failures=1,
    )
    worker = db_worker(tmp_path / "w.log")
    scheduler = Proc(tmp_path / "s.log", settings=FAST_BEAT)
    try:
        scheduler.wait_ready()
        run = task.run_now()
        wait_until(lambda: TaskRun.objects.get(pk=run.pk).status == "INTERRUPTED", 30, scheduler)
    finally:
        assert scheduler.stop() == 0
        worker.stop()
    run.refresh_from_db()
    assert "stuck" in run.error
    assert run.worker_id.startswith("worker:db:")
    task.refresh_from_db()
    # The failure limit applies to handed-off runs as to any other.
    assert not task.active
    assert task.consecutive_failures == 1


def test_the_facade_and_declarations_take_the_worker_options() -> None:
    from django_tasks_sched import scheduler
    from tests.testapp import jobs

    task = scheduler.add_job(
        "on-a-fleet", jobs.noop, trigger="interval", minutes=5, backend="db", queue_name=QUEUE
    )
    assert (task.backend, task.queue_name, task.priority) == ("db", QUEUE, 0)
    with pytest.raises(ValidationError, match="not a backend"):
        scheduler.add_job("nowhere", jobs.noop, trigger="interval", minutes=5, backend="x")


# -- what the review of the hand-off found ------------------------------------------------------


def test_a_broker_that_is_away_holds_up_nothing_else(tmp_path: Path) -> None:
    away = make_task("away", trigger_config={"seconds": 1}, backend="celery", queue_name=QUEUE)
    tick = make_task("tick", trigger_config={"seconds": 1})
    dead_broker = {"DTS_CELERY_BROKER": "redis://127.0.0.1:1/0"}  # nothing listens on port 1
    scheduler = Proc(tmp_path / "s.log", env=dead_broker)
    try:
        scheduler.wait_ready()
        wait_until(lambda: tick.runs.filter(status="SUCCESSFUL").count() >= 5, 30, scheduler)
        wait_until(lambda: away.runs.filter(status="MISSED").count() >= 2, 30, scheduler)
        # The send's failure is logged once the connection is refused (later under load).
        wait_until(lambda: "Could not enqueue" in scheduler.output(), 30, scheduler)
    finally:
        assert scheduler.stop() == 0
    # The local task fired every second meanwhile, and the fleet's run waits, recorded and
    # unhanded, to be sent when the broker is back; its later fires are recorded missed.
    assert fire_gaps(tick.runs.all()) == {1.0}
    [waiting] = away.runs.filter(status="QUEUED")
    if waiting.handed_at is None:
        assert waiting.handoffs == 0
    else:
        # Seen under load before a send whose unmark failed (the database busy) was released
        # at the stop (test_a_send_whose_unmark_failed_is_unmarked_later); still possible if
        # the stop comes between a pass's mark and its send. The run is not lost: the lease
        # sends it again (sweep_handoffs), counted as its one re-send.
        assert waiting.handoffs == 1


def test_a_send_cut_off_by_shutdown_leaves_its_runs_queued_and_unhanded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hand-off thread was still sending when the scheduler stopped: the runs of that
    send are unmarked (a later scheduler sends them at once); one another scheduler has
    marked since is left to it."""
    from datetime import timedelta

    from django.utils import timezone

    from django_tasks_sched.fleet import handoff

    task = make_task("fleet", trigger="date", trigger_config={"run_date": "2099-01-01T00:00"})
    ours = timezone.now()
    theirs = ours + timedelta(seconds=1)
    cut, taken = (
        TaskRun.objects.create(task=task, status="QUEUED", handed_at=mark, handoffs=1)
        for mark in (ours, theirs)
    )
    monkeypatch.setattr(handoff, "_sending", {cut.pk: ours, taken.pk: ours})
    assert handoff.release_sending() == 1
    cut.refresh_from_db()
    taken.refresh_from_db()
    assert (cut.handed_at, cut.handoffs) == (None, 0)
    assert (taken.handed_at, taken.handoffs) == (theirs, 1)
    assert handoff._sending == {}


def updates_fail(pattern: str) -> Callable[..., Any]:
    """An execute wrapper under which the UPDATEs whose SQL matches ``pattern`` fail, as if the
    database were away."""
    from django.db import OperationalError

    def wrapper(execute: Any, sql: str, *args: Any) -> Any:
        if sql.lstrip().upper().startswith("UPDATE") and re.search(pattern, sql):
            raise OperationalError("database away")
        return execute(sql, *args)

    return wrapper


@pytest.mark.parametrize("then", ["next pass", "stop"])
def test_a_send_whose_unmark_failed_is_unmarked_later(
    monkeypatch: pytest.MonkeyPatch, then: str
) -> None:
    """The backend was away, and so was the database when the send unmarked its runs: they
    are unmarked by the thread's next pass or by its stop, not left for the hand-off lease."""
    from django.db import OperationalError, connection

    from django_tasks_sched.fleet import handoff, tasks

    task = make_task("fleet", trigger="date", trigger_config={"run_date": "2099-01-01T00:00"})
    Task.objects.filter(pk=task.pk).update(backend="db", queue_name=QUEUE)
    run = TaskRun.objects.create(task=task, status="QUEUED")

    class BrokerAway:
        def using(self, **options: Any) -> Any:
            raise ConnectionError("broker away")

    monkeypatch.setattr(tasks, "run_handed_off", BrokerAway())
    monkeypatch.setattr(handoff, "_sending", {})
    # The unmark counts the hand-off back (the mark counts it up): "handoffs" - 1.
    unmark_fails = updates_fail(r"""handoffs["`]? - """)
    with connection.execute_wrapper(unmark_fails), pytest.raises(OperationalError):
        handoff.hand_off_queued()
    run.refresh_from_db()
    assert run.handed_at is not None
    assert run.handoffs == 1

    if then == "stop":
        handoff.HandOffThread(interval=1).stop()  # never started: nothing to wait for
        run.refresh_from_db()
        assert (run.handed_at, run.handoffs) == (None, 0)
    else:
        # The broker is still away: the pass unmarks the old send, sends again and fails, and
        # this time unmarks its runs itself.
        assert handoff.hand_off_queued() == 0
        run.refresh_from_db()
        assert (run.handed_at, run.handoffs) == (None, 0)


def test_a_sent_run_is_not_unmarked_when_recording_its_send_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One run went, one backend was away; the away run was unmarked, then writing the sent
    run's message id failed. The next pass must not unmark the run that went (it would be sent
    again without being counted): a lost message is the lease's."""
    from types import SimpleNamespace

    from django.db import OperationalError, connection

    from django_tasks_sched.fleet import handoff, tasks

    went, away = (
        make_task(name, trigger="date", trigger_config={"run_date": "2099-01-01T00:00"})
        for name in ("went", "away")
    )
    Task.objects.filter(pk=went.pk).update(backend="db", queue_name=QUEUE)
    Task.objects.filter(pk=away.pk).update(backend="celery", queue_name=QUEUE)
    runs = {task.name: TaskRun.objects.create(task=task, status="QUEUED") for task in (went, away)}

    class HalfTheBrokers:
        def using(self, *, backend: str, **options: Any) -> Any:
            if backend == "celery":
                raise ConnectionError("broker away")
            return SimpleNamespace(enqueue=lambda *args: SimpleNamespace(id="message-1"))

    monkeypatch.setattr(tasks, "run_handed_off", HalfTheBrokers())
    monkeypatch.setattr(handoff, "_sending", {})
    with (
        connection.execute_wrapper(updates_fail("backend_result_id")),
        pytest.raises(OperationalError),
    ):
        handoff.hand_off_queued()
    assert handoff.release_sending() == 0
    for run in runs.values():
        run.refresh_from_db()
    assert runs["went"].handed_at is not None
    assert runs["went"].handoffs == 1
    assert (runs["away"].handed_at, runs["away"].handoffs) == (None, 0)


def test_a_hand_off_the_backend_refuses_fails_the_run(tmp_path: Path) -> None:
    task = make_task(
        "refused",
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
        backend="db",
        queue_name=QUEUE,
    )
    Task.objects.filter(pk=task.pk).update(queue_name="unserved")  # past validation
    scheduler = Proc(tmp_path / "s.log")
    try:
        scheduler.wait_ready()
        run = task.run_now()
        wait_until(lambda: TaskRun.objects.get(pk=run.pk).status == "FAILED", 20, scheduler)
    finally:
        assert scheduler.stop() == 0
    run.refresh_from_db()
    assert "backend 'db' refused it" in run.error
    assert "unserved" in run.error


def test_the_hand_off_needs_no_default_backend_or_queue() -> None:
    code = (
        "import django; django.setup();"
        "from django.conf import settings;"
        "from django_tasks_sched.fleet.tasks import run_handed_off;"
        "from django_tasks_sched.fleet.validation import backend_errors;"
        "assert 'default' not in settings.TASKS;"
        "errors = backend_errors('db', settings.FLEET_QUEUE, 0);"
        "assert errors == {}, errors;"
        "print(run_handed_off.using(backend='db', queue_name=settings.FLEET_QUEUE).queue_name)"
    )
    result = run_python(code, DTS_TEST_TASKS_NO_DEFAULT="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == QUEUE


def test_queued_run_now_requests_of_a_fleet_task_count_toward_max_instances() -> None:
    from django.utils import timezone

    from django_tasks_sched.service.claims import Fire, claim_fires

    task = make_task("fleet", backend="db", queue_name=QUEUE)
    request = task.run_now()
    assert request.backend == ""  # not handed off yet
    claim_fires([Fire(task.pk, timezone.now(), None)], "scheduler:test")
    fire = task.runs.exclude(pk=request.pk).get()
    assert fire.status == "MISSED"
    assert "already queued on backend 'db'" in fire.error


def test_buffered_fires_of_a_fleet_task_run_one_at_a_time_in_order(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    task = make_task(
        "buffered",
        func="tests.testapp.jobs:trace_run",
        args=[str(trace), 1.5],
        trigger_config={"seconds": 1},
        backend="db",
        queue_name=QUEUE,
        overlap="buffer_all",
        # Under load two fires can reach a claim together: each runs, none is folded.
        coalesce=False,
    )
    workers = [db_worker(tmp_path / f"w{i}.log") for i in range(2)]
    schedulers = [Proc(tmp_path / f"s{i}.log") for i in range(2)]
    try:
        for scheduler in schedulers:
            scheduler.wait_ready()
        wait_until(lambda: task.runs.filter(status="SUCCESSFUL").count() >= 3, 60, schedulers[0])
        task.pause()
        wait_until(
            lambda: not task.runs.filter(status__in=["QUEUED", "RUNNING"]).exists(),
            60,
            schedulers[0],
        )
    finally:
        stop_all(*schedulers, *workers)
    # Two workers, yet one run at a time, every fire run once, in the order of its fire time.
    assert not runs_overlapped(task)
    odd = task.runs.exclude(status="SUCCESSFUL")
    assert not odd.exists(), list(odd.values_list("scheduled_for", "error"))
    assert fire_gaps(task.runs.all()) == {1.0}
    counts = executions(trace)
    assert sorted(counts) == sorted(task.runs.values_list("pk", flat=True))
    assert set(counts.values()) == {1}
    assert started_in_fire_order(task.runs.all())


@pytest.mark.parametrize("fleet", ["db_worker", "celery"])
def test_cancel_other_stops_the_call_on_the_worker(tmp_path: Path, fleet: str) -> None:
    from tests.test_policies import spans

    trace = tmp_path / "trace"
    if fleet == "celery":
        workers = [celery_worker(tmp_path / "w.log", REDIS, settings=FAST_BEAT)]
        env = {"DTS_CELERY_BROKER": REDIS}
    else:
        workers = [db_worker(tmp_path / f"w{i}.log", FAST_BEAT) for i in range(2)]
        env = {}
    task = make_task(
        "replaced",
        func="tests.testapp.jobs:trace_span",
        args=[str(trace), 4],
        trigger_config={"seconds": 2},
        backend=fleet if fleet == "celery" else "db",
        queue_name=QUEUE,
        overlap="cancel_other",
    )
    scheduler = Proc(tmp_path / "s.log", settings=FAST_BEAT, env=env)
    try:
        wait_until(lambda: len(spans(trace)[0]) >= 3, 60, scheduler)
        task.pause()
        wait_until(
            lambda: not task.runs.filter(status__in=["QUEUED", "RUNNING"]).exists(),
            60,
            scheduler,
        )
        # The last run was replaced by nothing: it ran to its end on the same workers.
        last = task.runs.filter(status="SUCCESSFUL").latest("scheduled_for")
        wait_until(lambda: spans(trace)[1][last.pk] == 1, 10, scheduler)
    finally:
        assert scheduler.stop() == 0
        stop_all(*workers)
    started, ended = spans(trace)
    cancelled = set(task.runs.filter(status="CANCELLED").values_list("pk", flat=True))
    assert cancelled & set(started)  # some were replaced mid-call ...
    assert not cancelled & set(ended)  # ... and every such call was stopped before its end
    assert not runs_overlapped(task)
