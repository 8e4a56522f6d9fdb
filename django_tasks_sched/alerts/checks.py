"""System checks of ``TASKS_SCHED["ALERTS"]`` (E010-E014, W010-W011; docs/checks.md)."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from django_tasks_sched.alerts.config import alert_settings, problems, raw_alerts
from django_tasks_sched.conf import SETTING_NAME, user_settings


def check_alerts() -> list[CheckMessage]:
    """Errors for malformed alert settings (the default is used meanwhile), then warnings."""
    errors: list[CheckMessage] = [
        Error(
            message,
            hint="See the ALERTS setting in the django-tasks-sched docs; a bad value falls back "
            "to its default until it is fixed.",
            id=check_id,
        )
        for check_id, message in problems()
    ]
    if errors or not isinstance(raw_alerts(), Mapping):
        return errors
    conf = alert_settings()
    warnings: list[CheckMessage] = []
    to_admins = "mail" in conf.CHANNELS and conf.MAIL_TO is None
    if to_admins and conf.ON_FAILURE and user_settings().get("MAIL_ADMINS_ON_FAILURE") is True:
        warnings.append(
            Warning(
                f"{SETTING_NAME}['MAIL_ADMINS_ON_FAILURE'] and failure alerts by mail are "
                "both on: ADMINS get a mail for every failed run and one per alert.",
                hint="Keep one: the alerts mail once per change of state.",
                id="django_tasks_sched.W010",
            )
        )
    any_on = conf.ON_FAILURE or conf.ON_MISSED or conf.NO_SUCCESS_MINUTES is not None
    if to_admins and any_on and not getattr(settings, "ADMINS", []):
        warnings.append(
            Warning(
                f"{SETTING_NAME}['ALERTS'] sends alerts by mail to ADMINS, but ADMINS is "
                "empty: those mails go nowhere.",
                hint="Set ADMINS, or ALERTS['MAIL_TO'], or drop 'mail' from CHANNELS.",
                id="django_tasks_sched.W011",
            )
        )
    return warnings
