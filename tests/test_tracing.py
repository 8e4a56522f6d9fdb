"""OpenTelemetry spans of runs, and a trace carried from a scheduler to a fleet's worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from django_tasks_sched import tracing
from django_tasks_sched.fleet.tasks import _carrier
from django_tasks_sched.models import TaskRun
from tests.factories import make_task
from tests.processes import SchedulerProcess as Proc
from tests.processes import db_worker, wait_until
from tests.spans import read_spans


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """This process's spans, in memory (an SDK of its own: the global provider is left alone)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", lambda: provider.get_tracer(tracing.SCOPE))
    monkeypatch.setattr(tracing, "_needs_span", lambda trace: True)
    yield exporter
    provider.shutdown()


@pytest.mark.django_db
def test_each_run_is_one_span_with_its_task_run_and_outcome(
    spans: InMemorySpanExporter,
) -> None:
    ok = make_task("ok").run_now(inline=True)
    failed = make_task("bad", func="tests.testapp.jobs:fail", args=["disk full"]).run_now(
        inline=True
    )
    first, second = spans.get_finished_spans()
    assert (first.name, first.kind) == ("run ok", SpanKind.INTERNAL)
    assert first.attributes is not None
    assert first.attributes["dts.run.id"] == ok.pk
    assert first.attributes["dts.run.status"] == "SUCCESSFUL"
    assert first.attributes["dts.run.origin"] == "MANUAL"
    assert first.status.status_code == StatusCode.UNSET
    assert second.name == "run bad"
    assert second.status.status_code == StatusCode.ERROR
    assert second.status.description == "RuntimeError: disk full"
    assert failed.status == "FAILED"


@pytest.mark.django_db
def test_a_hand_off_is_the_parent_of_the_run_span(spans: InMemorySpanExporter) -> None:
    task = make_task("fleet")
    run = TaskRun.objects.create(task=task, status="QUEUED")
    with tracing.handoff_span(run.pk, task) as carrier:
        assert carrier is not None
        assert "traceparent" in carrier
    with tracing.run_span(run, _carrier(carrier)):
        pass
    handoff, called = spans.get_finished_spans()
    assert (handoff.name, handoff.kind) == ("hand off fleet", SpanKind.PRODUCER)
    assert called.kind == SpanKind.CONSUMER
    assert called.parent is not None
    assert handoff.context is not None
    assert called.parent.span_id == handoff.context.span_id
    assert called.context is not None
    assert called.context.trace_id == handoff.context.trace_id


@pytest.mark.django_db
def test_without_an_sdk_only_a_hand_off_parent_makes_a_run_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the API installed and no tracer provider set, a run's span would record nothing
    and carry on the context that stays current anyway: a run makes one only to take the
    parent a hand-off's message brought."""
    from opentelemetry import trace

    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    assert not tracing._needs_span(trace)  # this process sets no provider
    made: list[str] = []
    real = tracing._tracer

    def counted() -> Any:
        made.append("span")
        return real()

    monkeypatch.setattr(tracing, "_tracer", counted)
    run = make_task("plain").run_now(inline=True)
    assert run.status == "SUCCESSFUL"
    assert made == []
    parent = {"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}
    with tracing.run_span(run, parent):
        assert format(trace.get_current_span().get_span_context().trace_id, "032x") == "1" * 32
    assert made == ["span"]


def test_a_run_needs_its_span_with_an_sdk_or_a_recording_span_around_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import context, trace

    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    assert not tracing._needs_span(trace)
    # A provider given to an instrumentation, not set globally: its span is current.
    own = TracerProvider()
    with own.get_tracer("request").start_as_current_span("request"):
        assert tracing._needs_span(trace)
    own.shutdown()
    # A provider set globally (the attribute set_tracer_provider sets once per process).
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", TracerProvider())
    assert tracing._needs_span(trace)

    # Without a span, what the task attaches and leaves attached ends with the run.
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    before = context.get_current()
    with tracing.run_span(object()):
        context.attach(context.set_value("leaked", True))
    assert context.get_current() == before


@pytest.mark.parametrize(
    "message",
    [
        None,
        "x",
        ["traceparent"],
        {"traceparent": 5},
        {str(i): "v" for i in range(9)},
        {"tracestate": "x" * 1025},
    ],
)
def test_a_malformed_trace_context_in_a_message_is_ignored(message: Any) -> None:
    assert _carrier(message) is None


def test_without_the_package_nothing_is_traced(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_be_called() -> None:
        raise AssertionError("a tracer was asked for")

    monkeypatch.setattr(tracing, "AVAILABLE", False)
    monkeypatch.setattr(tracing, "_tracer", must_not_be_called)
    with tracing.handoff_span(1, object()) as carrier:
        assert carrier is None
    with tracing.run_span(object()):
        pass


@pytest.mark.django_db
def test_a_broken_tracing_set_up_never_fails_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise ValueError("Propagator nonesuch not found")  # as a bad OTEL_PROPAGATORS does

    monkeypatch.setattr(tracing, "_tracer", broken)
    assert make_task("ok").run_now(inline=True).status == "SUCCESSFUL"
    task = make_task("fleet")
    with tracing.handoff_span(1, task) as carrier:
        assert carrier is None


@pytest.mark.django_db(transaction=True)
def test_the_trace_goes_from_the_scheduler_to_the_worker(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    env = {"DTS_TEST_SPANS": str(path)}
    task = make_task(
        "traced",
        trigger="date",
        trigger_config={"run_date": "2099-01-01T00:00:00"},
        backend="db",
        queue_name=settings.FLEET_QUEUE,
    )
    worker = db_worker(tmp_path / "w.log", env=env)
    scheduler = Proc(tmp_path / "s.log", env=env)
    try:
        scheduler.wait_ready()
        run = task.run_now()
        wait_until(lambda: TaskRun.objects.get(pk=run.pk).is_done(), 60, scheduler)
        # Both spans before the stop: each is written as it ends, the hand-off's by the
        # scheduler's hand-off thread, which a loaded machine may run after the worker's.
        names = {"hand off traced", "run traced"}
        wait_until(lambda: names <= {s["name"] for s in read_spans(path)}, 10, scheduler)
    finally:
        assert scheduler.stop() == 0
        worker.stop()
    by_name = {span["name"]: span for span in read_spans(path)}
    handoff, called = by_name["hand off traced"], by_name["run traced"]
    assert handoff["pid"] != called["pid"]  # two processes, one trace
    assert called["trace_id"] == handoff["trace_id"]
    assert called["parent_id"] == handoff["span_id"]
    assert (handoff["kind"], called["kind"]) == ("PRODUCER", "CONSUMER")
    assert called["attributes"]["dts.run.id"] == run.pk
    assert called["attributes"]["dts.run.status"] == "SUCCESSFUL"
