"""Signals of django-tasks-sched that projects can connect to."""

from __future__ import annotations

from django.dispatch import Signal

#: An alert was raised or resolved (sent once per change of state, by one process).
#: Arguments: ``sender`` (the ``AlertState`` class), ``state`` (the ``AlertState`` row),
#: ``raised`` (True: raised, False: resolved), ``text`` (the message in words).
alert_changed = Signal()
