"""Prometheus metrics: a real ``runscheduler --metrics-port`` scraped over HTTP."""

from __future__ import annotations

import socket
import urllib.request
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from django_tasks_sched import metrics
from django_tasks_sched.models import TaskRun
from tests.factories import make_task
from tests.processes import SchedulerProcess as Proc
from tests.processes import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Each sample of a scrape, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return samples(response.read().decode())


@pytest.mark.django_db(transaction=True)
def test_a_scheduler_serves_what_it_did_and_how_things_stand(tmp_path: Path) -> None:
    make_task("ok", trigger_config={"seconds": 1})
    make_task("bad", func="tests.testapp.jobs:fail", trigger_config={"seconds": 1})
    make_task("off", active=False)
    port = free_port()
    proc = Proc(tmp_path / "s.log", "--metrics-port", str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        proc.wait_ready()

        def ended() -> dict[Any, float] | None:
            got = scrape(url)
            done = got.get(("dts_runs_ended_total", (("status", "SUCCESSFUL"),)), 0)
            failed = got.get(("dts_runs_ended_total", (("status", "FAILED"),)), 0)
            return got if done >= 2 and failed >= 2 else None

        got = wait_until(ended, 20, proc)
    finally:
        assert proc.stop() == 0
    assert got[("dts_fires_total", (("result", "running"),))] >= 4
    assert got[("dts_run_duration_seconds_count", ())] >= 4
    assert got[("dts_run_lateness_seconds_count", ())] >= 4
    assert got[("dts_scheduler_processes", ())] == 1
    assert got[("dts_tasks", (("active", "true"),))] == 2
    assert got[("dts_tasks", (("active", "false"),))] == 1
    assert ("dts_runs_queued", (("kind", "buffered"),)) in got
    # The counters agree with the run history.
    recorded = TaskRun.objects.filter(status__in=["SUCCESSFUL", "FAILED"]).count()
    assert recorded >= got[("dts_runs_ended_total", (("status", "SUCCESSFUL"),))]


@pytest.mark.django_db
def test_the_view_serves_the_gauges_of_the_database() -> None:
    task = make_task()
    TaskRun.objects.create(task=task, status="RUNNING", started_at=timezone.now())
    TaskRun.objects.create(task=task, status="QUEUED", buffered=True)
    response = metrics.metrics_view(RequestFactory().get("/metrics"))
    assert response.status_code == 200
    got = samples(response.content.decode())
    assert got[("dts_runs_running", ())] == 1
    assert got[("dts_runs_queued", (("kind", "buffered"),))] == 1
    assert got[("dts_runs_queued", (("kind", "waiting"),))] == 0
    assert got[("dts_scheduler_processes", ())] == 0


def test_without_prometheus_client_counting_costs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_be_called() -> None:
        raise AssertionError("the metrics were touched")

    monkeypatch.setattr(metrics, "AVAILABLE", False)
    monkeypatch.setattr(metrics, "_ours", must_not_be_called)
    metrics.count_fires(["running"])
    metrics.observe_outcomes([object()])


@pytest.mark.django_db
def test_the_option_says_what_is_missing_or_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CommandError, match="--metrics-port must be from 1 to 65535, not 70000"):
        call_command("runscheduler", "--metrics-port", "70000", stdout=StringIO())
    monkeypatch.setattr(metrics, "AVAILABLE", False)
    with pytest.raises(CommandError, match="needs prometheus-client"):
        call_command("runscheduler", "--metrics-port", "9300", stdout=StringIO())
