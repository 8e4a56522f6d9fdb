"""On SQLite under Linux, a write to the database's files wakes the scheduler: no poll needed.

The watch (inotify on the database's directory) wakes the loop for a commit of any process,
ignores the directory's other files, is trusted only once it has reported a write, is made on
local filesystems only, and gives way to the poll when it cannot watch or its directory goes;
for a second after a write the loop keeps the poll's pace (the commit may not be visible yet),
for one poll interval after its own heartbeat's write.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.utils import timezone

from django_tasks_sched.changes import bump
from django_tasks_sched.models import Task, TaskRun
from django_tasks_sched.service import listen
from django_tasks_sched.service.runner import LISTENING_POLL, SchedulerService
from django_tasks_sched.service.watch import (
    LOCAL_FILESYSTEMS,
    FileWatcher,
    _watch,
    filesystem_type,
)
from tests.processes import SchedulerProcess, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def _files(directory: Path) -> tuple[str, ...]:
    path = directory / "db.sqlite3"
    return (str(path), f"{path}-wal")


def _commit(directory: Path) -> None:
    with contextlib.closing(sqlite3.connect(directory / "db.sqlite3")) as db, db:
        db.execute("PRAGMA journal_mode=wal")
        db.execute("CREATE TABLE IF NOT EXISTS t (x)")
        db.execute("INSERT INTO t VALUES (1)")


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[tuple[FileWatcher, threading.Event]]:
    wake = threading.Event()
    thread = FileWatcher(wake, _files(tmp_path), gap=0.01)
    thread.start()
    assert thread.watching.wait(10)  # a write before the watch would go untold
    yield thread, wake
    thread.stop()
    assert not thread.is_alive()


def test_a_commit_wakes_the_loop_and_proves_the_watch(
    watcher: tuple[FileWatcher, threading.Event], tmp_path: Path
) -> None:
    thread, wake = watcher
    assert not thread.listening.is_set()  # trusted only once it has seen a write
    _commit(tmp_path)
    assert wake.wait(10)
    assert thread.listening.is_set()
    assert thread.settling()  # the loop keeps the poll's pace for a second after a write


def test_only_the_database_files_count(tmp_path: Path) -> None:
    thread = FileWatcher(threading.Event(), _files(tmp_path), gap=0.01)
    descriptor = _watch(str(tmp_path))
    try:
        # The kernel queues each event as the write happens: a read right after returns it.
        (tmp_path / "server.log").write_text("a line")
        (tmp_path / "db.sqlite3-journal").write_text("")
        assert not thread._written(descriptor)
        _commit(tmp_path)
        assert thread._written(descriptor)
        assert not thread._written(descriptor)  # each event is read once
    finally:
        os.close(descriptor)


def test_a_stop_ends_the_wait_at_once(watcher: tuple[FileWatcher, threading.Event]) -> None:
    thread, _ = watcher
    thread.stop(timeout=10)
    assert not thread.is_alive()


def test_a_directory_it_cannot_watch_leaves_the_loop_polling(tmp_path: Path) -> None:
    thread = FileWatcher(threading.Event(), _files(tmp_path / "absent"), gap=0.01)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert not thread.listening.is_set()
    thread.stop()


def test_a_watch_whose_directory_goes_stops_listening(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    directory.mkdir()
    wake = threading.Event()
    thread = FileWatcher(wake, _files(directory), gap=0.01)
    thread.start()
    assert thread.watching.wait(10)  # a write before the watch would go untold
    _commit(directory)
    assert wake.wait(10)
    assert thread.listening.is_set()
    # (With a file in it still open, the kernel tells of the directory's deletion only once
    # the file is closed; meanwhile the stamp reader finds the database file gone, and polls.)
    shutil.rmtree(directory)
    thread.join(10)
    assert not thread.is_alive()
    assert not thread.listening.is_set()  # the loop polls at its own pace again
    thread.stop()


@pytest.mark.django_db(transaction=True)
def test_the_loop_keeps_the_polls_pace_for_a_second_after_a_write(
    service: SchedulerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not isinstance(service.listener, FileWatcher):
        pytest.skip("the file watch is SQLite's, on a database file")
    monkeypatch.setattr(listen, "SETTLING", 60.0)  # however slow this machine is
    bump()  # a commit: the watch reports it
    assert service.listener.listening.wait(10)
    # The commit may not have been visible to the read it woke (SQLite: after its fsync).
    assert service.poll_wait() == service.options.poll_interval
    poll = service.options.poll_interval
    # Under a slower poll (the watch's gap is the poll interval): a read once the second has
    # passed, not a whole poll later...
    monkeypatch.setattr(service.options, "poll_interval", 600.0)
    monkeypatch.setattr(service.listener, "gap", 600.0)
    assert 0 < service.poll_wait() <= 60.0
    # ...but after the heartbeat's own write, no read before the poll's.
    with service.own_write():
        service.listener.written_at = time.monotonic()
    assert service.poll_wait() > 60.0
    monkeypatch.setattr(service.options, "poll_interval", poll)
    monkeypatch.setattr(listen, "SETTLING", 0.0)  # the second has passed
    assert service.poll_wait() == max(service.options.poll_interval, LISTENING_POLL)
    # A write reported during the heartbeat's own: one poll interval, not a second.
    monkeypatch.setattr(listen, "SETTLING", 60.0)
    with service.own_write():
        service.listener.written_at = time.monotonic()
    service.listener.gap = 0.0
    assert service.poll_wait() == max(service.options.poll_interval, LISTENING_POLL)
    service.listener.stop()  # the watch gone: the poll's own pace
    assert service.poll_wait() == service.options.poll_interval


def test_a_write_reported_after_the_loops_own_needs_no_second_of_settling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reports' times are set by hand: when the kernel's events are read is the thread's
    # business (the tests above); what a report is trusted for is this.
    monkeypatch.setattr(listen, "SETTLING", 60.0)  # however slow this machine is
    thread = FileWatcher(threading.Event(), _files(tmp_path), gap=0.0)
    # One connection throughout: the log stays, and each commit makes it longer.
    with contextlib.closing(sqlite3.connect(tmp_path / "db.sqlite3")) as db:
        db.isolation_level = None
        db.execute("PRAGMA journal_mode=wal")
        db.execute("CREATE TABLE t (x)")
        thread.written_at = time.monotonic()  # another process's commit, before the loop's
        with thread.own_write():
            db.execute("INSERT INTO t VALUES (1)")  # the heartbeat's write
        assert thread.settling()  # reported before the heartbeat: a second of polling
        thread.written_at = time.monotonic()  # the heartbeat's own report, read just after
        assert not thread.settling()  # the one poll interval (0 here) has passed
        thread.gap = 60.0
        assert thread.settling()  # but not before it
        thread.gap = 0.0
        db.execute("INSERT INTO t VALUES (2)")  # another process's commit, after the loop's
        thread.written_at = time.monotonic()
        assert thread.settling()  # the log grew: not the heartbeat's own


def test_an_own_write_that_failed_proves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A write that gave up waiting for the lock: the holder's commit may not be visible yet.
    monkeypatch.setattr(listen, "SETTLING", 60.0)
    thread = FileWatcher(threading.Event(), _files(tmp_path), gap=0.0)

    def write() -> None:
        with thread.own_write():
            thread.written_at = time.monotonic()  # another process's commit, reported
            raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError):
        write()
    assert thread.settling()


def test_only_a_local_filesystem_is_watched(tmp_path: Path) -> None:
    assert filesystem_type("/proc") == "proc"
    assert not FileWatcher.supported(("/proc/db.sqlite3", "/proc/db.sqlite3-wal"))
    assert filesystem_type(str(tmp_path)) in LOCAL_FILESYSTEMS
    assert FileWatcher.supported(_files(tmp_path))
    assert not FileWatcher.supported(())  # an in-memory database


@pytest.mark.django_db(transaction=True)
def test_a_change_takes_effect_at_once_though_the_poll_is_slow(tmp_path: Path) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the file watch is SQLite's")
    # A poll every 30 s and a heartbeat every minute: only the watch can wake it in seconds.
    proc = SchedulerProcess(
        tmp_path / "scheduler.log",
        "--poll-interval",
        "30",
        settings={"HEARTBEAT_INTERVAL": 60, "HEARTBEAT_TIMEOUT": 180},
    )
    try:
        proc.wait_ready()
        # One commit moves the stamp with the row (the save's own bump commits just after).
        # The read its write woke may come before it is visible: read again within a second.
        with transaction.atomic():
            task = Task.objects.create(
                name="soon",
                func="tests.testapp.jobs:noop",
                trigger="date",
                trigger_config={"run_date": (timezone.now() + timedelta(seconds=1)).isoformat()},
            )
            bump()
        run = wait_until(lambda: TaskRun.objects.filter(task=task).first(), 10, proc)
        run.wait(timeout=10)
        assert run.status == TaskRun.Status.SUCCESSFUL
    finally:
        assert proc.stop() == 0
