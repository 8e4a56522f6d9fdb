"""Sending an alert's change: Django mail, a webhook (JSON POST, Slack-compatible), a signal.

Each channel is tried on its own: one that fails is logged in one line and the others still
go. Nothing here raises into the caller (the scheduler's alert thread, or ``checkalerts``).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable
from typing import Any

from django.core.mail import mail_admins, send_mail
from django.utils.translation import gettext as _

from django_tasks_sched.alerts.config import AlertSettings, alert_settings
from django_tasks_sched.alerts.states import Change, bounded
from django_tasks_sched.models import AlertState
from django_tasks_sched.signals import alert_changed

logger = logging.getLogger(__name__)

#: Most characters of a message's text.
TEXT_LIMIT = 2000


def describe(change: Change) -> tuple[str, str]:
    """The subject (one line) and the text of an alert's change, in words."""
    state = change.state
    where = _("task %(name)s") % {"name": state.task.name} if state.task else _("the scheduler")
    values = {"where": where, "kind": state.get_kind_display()}
    if change.raised:
        subject = _("Alert: %(where)s: %(kind)s") % values
    else:
        subject = _("Resolved: %(where)s: %(kind)s") % values
    text = f"{subject}\n{state.detail}" if state.detail else subject
    return bounded(subject, 200), bounded(text, TEXT_LIMIT)


def payload(change: Change) -> dict[str, Any]:
    """The webhook's JSON body: Slack reads ``text`` and ignores the rest."""
    state = change.state
    _subject, text = describe(change)
    return {
        "text": text,
        "alert": {
            "task": state.task.name if state.task else None,
            "kind": state.kind,
            "raised": change.raised,
            "detail": state.detail,
            "at": state.changed_at.isoformat(),
        },
    }


def send(change: Change, conf: AlertSettings | None = None) -> list[str]:
    """Send ``change`` through every configured channel; returns the channels that failed."""
    conf = conf or alert_settings()
    senders: dict[str, Callable[[Change, AlertSettings], None]] = {
        "mail": _mail,
        "webhook": _webhook,
        "signal": _signal,
    }
    failed = []
    for name in conf.CHANNELS:
        try:
            senders[name](change, conf)
        except Exception as exc:  # any error of a channel: logged, never raised
            failed.append(name)
            logger.warning("Alert channel %s failed for %s: %r", name, change.state, exc)
    return failed


def _mail(change: Change, conf: AlertSettings) -> None:
    subject, text = describe(change)
    if conf.MAIL_TO is None:
        mail_admins(f"[django-tasks-sched] {subject}", text, fail_silently=False)
    else:
        send_mail(f"[django-tasks-sched] {subject}", text, None, list(conf.MAIL_TO))


def _webhook(change: Change, conf: AlertSettings) -> None:
    if not conf.WEBHOOK_URL:
        raise ValueError("WEBHOOK_URL is not set")
    request = urllib.request.Request(
        conf.WEBHOOK_URL,
        data=json.dumps(payload(change)).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "django-tasks-sched"},
        method="POST",
    )
    # A non-2xx answer raises HTTPError; the URL was checked to be http(s) (check E014).
    with urllib.request.urlopen(request, timeout=conf.WEBHOOK_TIMEOUT) as response:
        response.read(1024)


def _signal(change: Change, conf: AlertSettings) -> None:
    _subject, text = describe(change)
    responses = alert_changed.send_robust(
        sender=AlertState, state=change.state, raised=change.raised, text=text
    )
    for receiver, result in responses:
        if isinstance(result, Exception):
            logger.warning("Receiver %r of alert_changed failed: %r", receiver, result)
