"""Why a fire did not run: the opening words of a MISSED (or replaced) run's ``error``.

Stored in English, as every run's error is, so the admin's counters
(:mod:`django_tasks_sched.counters`) can tell the causes apart whatever the language of the
process that wrote them. Each cause is written from here and counted from here.
"""

from __future__ import annotations

#: Late: past the misfire grace time, or while no scheduler ran (or firing was paused).
NOT_RUN = "Not run:"
#: A hand-off its backend lost twice (``fleet.handoff``): "Not run" too, but not late.
LOST = "Not run: handed to backend"
#: Folded into a later fire of its task (``coalesce``).
COALESCED = "Coalesced: folded into a later fire of the task that came due together with it."
#: The overlap policy skipped it (``max_instances`` reached, or a fire already waits).
SKIPPED = "Skipped:"
#: Beyond ``OVERLAP_BUFFER_LIMIT``.
DROPPED = "Dropped:"
#: A running run that a later fire replaced (overlap ``cancel_other``), recorded CANCELLED.
REPLACED = "Cancelled: a later fire replaced it (overlap cancel_other)."
