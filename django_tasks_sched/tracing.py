"""OpenTelemetry spans for runs, when ``opentelemetry-api`` is installed (the ``tracing`` extra).

Each run's call is one span, ``run <task name>``, wherever it is called (a scheduler's thread
or worker process, a fleet's worker, ``runtask``, inline): it is made by the one run path,
:func:`django_tasks_sched.execution.execute_run`. Its attributes name the task and the run
(``dts.task.name``, ``dts.task.id``, ``dts.run.id``, ``dts.run.attempt``, ``dts.run.origin``,
``dts.run.scheduled_for``) and its outcome (``dts.run.status``; an error status for a run that
did not succeed).

A run handed to a worker fleet carries the trace on: the scheduler makes a ``hand off <task
name>`` span (kind PRODUCER) as it enqueues the run, and puts its context in the message
(W3C trace context, through the configured propagator); the worker's ``run`` span is its child
(kind CONSUMER). Configure an SDK and an exporter in each process as usual (for instance with
``opentelemetry-instrument``); without one a run makes no span (unless a hand-off brought a
parent to carry on, or a span that records is current), and without the package nothing is
imported at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.util import find_spec
from typing import Any

logger = logging.getLogger(__name__)

#: Whether opentelemetry-api is installed (read once).
AVAILABLE = find_spec("opentelemetry") is not None and find_spec("opentelemetry.trace") is not None

#: The instrumentation scope's name.
SCOPE = "django_tasks_sched"


def _tracer() -> Any:
    from opentelemetry import trace

    from django_tasks_sched import __version__

    return trace.get_tracer(SCOPE, __version__)


def _attributes(run: Any) -> dict[str, Any]:
    attributes = {
        "dts.task.name": run.task.name,
        "dts.task.id": run.task_id,
        "dts.run.id": run.pk,
        "dts.run.attempt": run.attempt,
        "dts.run.origin": str(run.origin),
    }
    if run.scheduled_for:
        attributes["dts.run.scheduled_for"] = run.scheduled_for.isoformat()
    return attributes


_warned = False


def _broken(what: str) -> None:
    """Tracing failed (an SDK or propagator misconfigured): say so once, never fail a run."""
    global _warned
    if not _warned:
        _warned = True
        logger.warning("OpenTelemetry failed %s; runs go on untraced", what, exc_info=True)


def _needs_span(trace: Any) -> bool:
    """Whether a run's span (with no parent from a hand-off) could matter: a tracer provider
    is set (an SDK), or the current span records (an instrumentation given a provider of its
    own, none set globally: the run's no-op span keeps the task from changing that one).

    Otherwise the API's span records nothing and carries the current span on, which stays
    current without it; with the API installed and no SDK, it was a fifth of the cost of
    calling a no-op task. Asked at each run: a provider set later is used from then on.
    """
    return (
        not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        or trace.get_current_span().is_recording()
    )


@contextmanager
def run_span(run: Any, carrier: Mapping[str, str] | None = None) -> Iterator[None]:
    """The span of one run's call (``run.status`` read at its end). Never raises itself.

    ``carrier``: the trace context a hand-off put in the message, the parent of this span.
    """
    if not AVAILABLE:
        yield
        return
    try:
        from opentelemetry import context, propagate, trace

        if not carrier and not _needs_span(trace):
            # The call's context is restored after it, as a span's end restores it: what
            # the task attaches and leaves attached does not outlive the run.
            token = context.attach(context.get_current())
            scope = None
        else:
            parent = propagate.extract(carrier) if carrier else None
            kind = trace.SpanKind.CONSUMER if carrier else trace.SpanKind.INTERNAL
            scope = _tracer().start_as_current_span(
                f"run {run.task.name}",
                context=parent,
                kind=kind,
                attributes=_attributes(run),
                record_exception=False,
                set_status_on_exception=False,
            )
            span = scope.__enter__()
    except Exception:
        _broken("to start a run's span")
        yield
        return
    if scope is None:
        try:
            yield
        finally:
            context.detach(token)
        return
    try:
        yield
    finally:
        try:
            status = str(run.status)
            span.set_attribute("dts.run.status", status)
            if status != "SUCCESSFUL":
                first = (run.error or status).strip().splitlines()
                description = first[0][:200] if first else ""
                span.set_status(trace.Status(trace.StatusCode.ERROR, description))
            scope.__exit__(None, None, None)
        except Exception:
            _broken("to end a run's span")


@contextmanager
def handoff_span(run_id: int, task: Any) -> Iterator[dict[str, str] | None]:
    """The span of one hand-off, around the enqueue; yields its context for the message (or
    None: no tracing). Never raises itself."""
    if not AVAILABLE:
        yield None
        return
    try:
        from opentelemetry import propagate, trace

        scope = _tracer().start_as_current_span(
            f"hand off {task.name}",
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "dts.task.name": task.name,
                "dts.task.id": task.pk,
                "dts.run.id": run_id,
                "dts.backend": task.backend,
            },
        )
        scope.__enter__()
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    except Exception:
        _broken("to start a hand-off's span")
        yield None
        return
    try:
        yield carrier or None
    except BaseException as exc:
        try:
            scope.__exit__(type(exc), exc, exc.__traceback__)  # recorded on the span
        except Exception:
            _broken("to end a hand-off's span")
        raise
    else:
        try:
            scope.__exit__(None, None, None)
        except Exception:
            _broken("to end a hand-off's span")
