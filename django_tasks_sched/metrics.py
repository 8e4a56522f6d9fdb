"""Prometheus metrics, when ``prometheus-client`` is installed (the ``metrics`` extra).

Two kinds, for two reasons:

* **What this process did**, counted as it happens: fires claimed (by what became of them),
  runs ended (by status), and histograms of their duration and lateness (start minus fire
  time). Counted where the one run lifecycle records them (:func:`count_fires` from a claim,
  :func:`observe_outcomes` from the follow-up of every finished or ended run), so each run is
  counted once, by the process that recorded it. Every ``runscheduler`` serves its own on
  ``--metrics-port``: Prometheus scrapes each and sums them (``sum(rate(...))``).
* **How things stand**, read from the database at each scrape
  (:class:`DatabaseCollector`): live scheduler processes, runs RUNNING, runs QUEUED (waiting
  for a thread or a worker, or buffered by the overlap policy), active and inactive tasks.
  These are the same whichever process answers: take ``max()`` across instances.

With ``prometheus-client`` missing, :func:`count_fires` and :func:`observe_outcomes` return at
once and nothing else is imported: no cost. With it, counting never raises into the run path,
and the database gauges are registered only where this app serves the metrics.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from importlib.util import find_spec
from typing import Any

logger = logging.getLogger(__name__)

#: Whether prometheus-client is installed (read once: an import per run would cost).
AVAILABLE = find_spec("prometheus_client") is not None

#: Buckets of the duration and lateness histograms, in seconds: from a fast call to an hour.
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

_metrics: Any = None
_lock = threading.Lock()
_collector: Any = None


def _ours() -> Any:
    """The metrics of this process, made on first use (in prometheus-client's registry)."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = _make()
    return _metrics


def _make() -> Any:
    """This process's counters and histograms, in prometheus-client's registry."""
    from types import SimpleNamespace

    from prometheus_client import Counter, Histogram

    metrics = SimpleNamespace(
        fires=Counter(
            "dts_fires",
            "Fires claimed by this process, by what became of them.",
            ["result"],
        ),
        runs=Counter("dts_runs_ended", "Runs this process recorded ended, by status.", ["status"]),
        duration=Histogram(
            "dts_run_duration_seconds",
            "How long the runs this process recorded ended took, call to end.",
            buckets=BUCKETS,
        ),
        lateness=Histogram(
            "dts_run_lateness_seconds",
            "How late the runs this process recorded ended started after their fire time.",
            buckets=BUCKETS,
        ),
    )
    return metrics


def _serve_gauges() -> None:
    """Register the database gauges: only where this app serves the metrics (a project's own
    /metrics endpoint in another process does not start querying the scheduler's tables)."""
    global _collector
    with _lock:
        if _collector is None:
            from prometheus_client import REGISTRY

            _collector = DatabaseCollector()
            REGISTRY.register(_collector)


def count_fires(results: Iterable[str]) -> None:
    """Count claimed fires by result: ``running``, ``queued`` (for a backend), ``buffered``,
    ``missed`` or ``cancelled`` (replaced in its own batch, overlap ``cancel_other``)."""
    if not AVAILABLE:
        return
    try:
        fires = _ours().fires
        for result in results:
            fires.labels(result).inc()
    except Exception:  # counting must never fail a claim
        logger.warning("Could not count fires", exc_info=True)


def observe_outcomes(runs: Iterable[Any]) -> None:
    """Count ended runs by status, and observe their duration and lateness."""
    if not AVAILABLE:
        return
    try:
        metrics = _ours()
        for run in runs:
            metrics.runs.labels(str(run.status)).inc()
            if run.started_at and run.finished_at:
                took = (run.finished_at - run.started_at).total_seconds()
                metrics.duration.observe(max(0.0, took))
            if run.started_at and run.scheduled_for:
                late = (run.started_at - run.scheduled_for).total_seconds()
                metrics.lateness.observe(max(0.0, late))
    except Exception:  # counting must never keep a run from its follow-up (retries...)
        logger.warning("Could not count ended runs", exc_info=True)


class DatabaseCollector:
    """Gauges read from the database at each scrape: the same from every process."""

    def describe(self) -> list[Any]:
        # Nothing to declare: registering must not query the database.
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from django_tasks_sched.models import SchedulerProcess, Task, TaskRun

        try:
            processes = SchedulerProcess.objects.alive().count()
            statuses = [TaskRun.Status.RUNNING, TaskRun.Status.QUEUED]
            counts = {
                (status, bool(buffered)): count
                for status, buffered, count in _grouped(
                    TaskRun.objects.filter(status__in=statuses), "status", "buffered"
                )
            }
            tasks = dict(_grouped(Task.objects.all(), "active"))
        except Exception:
            # The database is away: say nothing rather than wrong zeros (the scrape still
            # answers with this process's own counters).
            logger.warning("Could not read the scheduler's gauges", exc_info=True)
            return

        yield GaugeMetricFamily(
            "dts_scheduler_processes", "Live runscheduler processes.", value=processes
        )
        running = GaugeMetricFamily("dts_runs_running", "Runs RUNNING now.")
        running.add_metric([], counts.get((TaskRun.Status.RUNNING, False), 0))
        yield running
        queued = GaugeMetricFamily(
            "dts_runs_queued",
            "Runs QUEUED now: waiting to start (a thread, a worker), or buffered by the overlap "
            "policy.",
            labels=["kind"],
        )
        queued.add_metric(["waiting"], counts.get((TaskRun.Status.QUEUED, False), 0))
        queued.add_metric(["buffered"], counts.get((TaskRun.Status.QUEUED, True), 0))
        yield queued
        gauge = GaugeMetricFamily("dts_tasks", "Tasks, by whether they fire.", labels=["active"])
        gauge.add_metric(["true"], tasks.get(True, 0))
        gauge.add_metric(["false"], tasks.get(False, 0))
        yield gauge


def _grouped(queryset: Any, *fields: str) -> list[tuple[Any, ...]]:
    from django.db.models import Count

    rows = queryset.order_by().values(*fields).annotate(n=Count("pk"))
    return [(*(row[name] for name in fields), row["n"]) for row in rows]


def serve(port: int, address: str) -> None:
    """Serve this process's metrics over HTTP (``runscheduler --metrics-port``)."""
    from prometheus_client import start_http_server

    _ours()
    _serve_gauges()
    start_http_server(port, addr=address)
    logger.info("Metrics on http://%s:%d/metrics", address, port)


def metrics_view(request: Any) -> Any:
    """The metrics of this (web) process, for a project's URLconf: mostly the gauges."""
    from django.http import HttpResponse
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    _ours()
    _serve_gauges()
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
