"""What a fire does when its task already has ``max_instances`` runs going: ``Task.overlap``.

One rule for every path that starts a run of the schedule: a scheduler claiming fires
(:mod:`.service.claims`), a run requested "respecting the overlap policy" (``run_now``), and a
backfill. The caller holds the task's row lock and counts its runs, so the answer cannot go
stale before the caller writes it.

=============  ===================================================  ==========================
policy         a fire that finds every slot taken                   Temporal / Kubernetes
=============  ===================================================  ==========================
skip           recorded MISSED                                      SKIP / ``Forbid``
buffer_one     waits (QUEUED, buffered) if none waits yet, else     BUFFER_ONE / -
               MISSED
buffer_all     waits, in order, up to ``OVERLAP_BUFFER_LIMIT``;      BUFFER_ALL / -
               beyond it MISSED (dropped)
cancel_other   the oldest running runs are ended CANCELLED (and     CANCEL_OTHER / ``Replace``
               stopped where the executor can), the fire runs
=============  ===================================================  ==========================

A fire that finds a free slot while earlier fires still wait (buffered, or a catch-up) does
not jump the line: it joins its end (buffer policies) or is skipped (``skip``), so waiting
fires run in the order of their fire times. Only ``cancel_other``, where the latest fire wins,
takes the free slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from django_tasks_sched.conf import get_settings
from django_tasks_sched.reasons import DROPPED, REPLACED, SKIPPED


class Action(Enum):
    RUN = "run"
    BUFFER = "buffer"
    MISS = "miss"
    CANCEL_OTHER = "cancel_other"


@dataclass
class Slots:
    """One task's runs as counted under its lock, kept current while a batch is decided."""

    #: Runs in flight: RUNNING, and QUEUED on a backend (not buffered).
    running: int
    #: Fires waiting for a slot (QUEUED, buffered).
    buffered: int


@dataclass(frozen=True)
class Decision:
    action: Action
    #: Why the fire is MISSED (``Action.MISS``), or why the others are cancelled.
    reason: str = ""
    #: How many running runs to cancel (``Action.CANCEL_OTHER``).
    cancel: int = 0


def decide(overlap: str, max_instances: int, slots: Slots, *, backend: str = "") -> Decision:
    """What to do with one fire of a task whose runs are counted in ``slots``.

    Updates ``slots`` as if the decision were carried out, so the next fire of the same batch
    is decided against it.
    """
    waiting = slots.buffered and overlap != "cancel_other"
    if slots.running < max_instances and not waiting:
        slots.running += 1
        return Decision(Action.RUN)
    if overlap == "buffer_one" or overlap == "buffer_all":
        limit = 1 if overlap == "buffer_one" else get_settings().OVERLAP_BUFFER_LIMIT
        if slots.buffered < limit:
            slots.buffered += 1
            return Decision(Action.BUFFER)
        if overlap == "buffer_one":
            return Decision(
                Action.MISS, f"{SKIPPED} a fire already waits for a slot (overlap buffer_one)."
            )
        return Decision(
            Action.MISS,
            f"{DROPPED} {slots.buffered} fires already wait for a slot (overlap buffer_all, "
            "OVERLAP_BUFFER_LIMIT).",
        )
    if overlap == "cancel_other":
        excess = slots.running - max_instances + 1
        slots.running = max_instances
        return Decision(Action.CANCEL_OTHER, REPLACED, cancel=excess)
    if slots.running < max_instances:
        reason = f"{SKIPPED} earlier fires still wait for a slot."
    elif backend:
        reason = (
            f"{SKIPPED} {max_instances} run(s) already queued on backend {backend!r} or running "
            "(max_instances reached)."
        )
    else:
        reason = f"{SKIPPED} {max_instances} run(s) already running (max_instances reached)."
    return Decision(Action.MISS, reason)
