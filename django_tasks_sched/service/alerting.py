"""The alert thread of a scheduler process: evaluates and sends alerts, away from firing.

A slow webhook or SMTP server only delays this thread, never a fire. Every scheduler process
evaluates; the guarded flip (:mod:`django_tasks_sched.alerts.states`) makes one of them send.
"""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections, connections
from django.utils import timezone

from django_tasks_sched.alerts.channels import send
from django_tasks_sched.alerts.config import alert_settings
from django_tasks_sched.alerts.evaluate import AlertChecker
from django_tasks_sched.alerts.states import Change, flip
from django_tasks_sched.models import AlertState

logger = logging.getLogger("django_tasks_sched.alerts")


class AlertWatch:
    """Checks the alerts every ``CHECK_INTERVAL`` seconds until stopped."""

    def __init__(self) -> None:
        self.checker = AlertChecker(notify=self.send)

    def start(self, stopping: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stopping,), name="dts-alerts", daemon=True)
        thread.start()
        return thread

    def run(self, stopping: threading.Event) -> None:
        """The thread's body: resolve "no scheduler alive" (we are), then check on a timer."""
        try:
            self.resolve_no_scheduler()
            while not stopping.wait(alert_settings().CHECK_INTERVAL):
                # This thread's own connection: mind CONN_MAX_AGE and broken connections.
                close_old_connections()
                self.check_once()
        finally:
            connections.close_all()  # only this thread's connections

    def resolve_no_scheduler(self) -> None:
        try:
            change = flip(None, AlertState.Kind.NO_SCHEDULER, False, timezone.now())
        except Exception as exc:
            logger.warning("Could not resolve the no-scheduler alert: %r", exc)
            return
        if change:
            send(change)

    def check_once(self) -> int:
        """One check; returns how many changes this process sent. Never raises."""
        try:
            return len(self.checker.check())
        except Exception as exc:
            # Each part of a check is guarded; this is settings or the like.
            logger.warning("Alert check failed: %r", exc)
            return 0

    @staticmethod
    def send(change: Change) -> None:
        """Send a change this process won, the moment it wins it."""
        logger.info("Alert %s: %s", "raised" if change.raised else "resolved", change.state)
        send(change)
