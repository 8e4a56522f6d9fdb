"""``Task.full_clean()`` for ``backend``, ``queue_name`` and ``priority``: asked of the backend."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _


def backend_errors(alias: str, queue_name: str, priority: int) -> dict[str, str]:
    """Field errors for handing runs to ``alias`` on that queue with that priority."""
    try:
        from django_tasks_sched.fleet import compat
    except ImproperlyConfigured:
        return {
            "backend": _(
                "running tasks on a backend needs django.tasks: Django 6, or on Django 5.2 "
                "the django-tasks backport (pip install 'django-tasks-sched[fleet]')"
            )
        }
    aliases = compat.backend_aliases()
    if alias not in aliases:
        return {
            "backend": _(
                "'%(alias)s' is not a backend in the TASKS setting; the backends are: %(aliases)s"
            )
            % {"alias": alias, "aliases": ", ".join(aliases)}
        }
    try:
        from django_tasks_sched.fleet.tasks import run_handed_off

        compat.task_backends[alias]
    except Exception as exc:
        return {
            "backend": _("backend '%(alias)s' cannot be loaded: %(error)s")
            % {"alias": alias, "error": exc}
        }
    try:
        run_handed_off.using(backend=alias, queue_name=queue_name)
    except compat.InvalidTask as exc:
        return {"queue_name": _("backend '%(alias)s': %(error)s") % {"alias": alias, "error": exc}}
    except Exception as exc:
        return {"backend": _("backend '%(alias)s': %(error)s") % {"alias": alias, "error": exc}}
    try:
        run_handed_off.using(backend=alias, queue_name=queue_name, priority=priority)
    except Exception as exc:
        return {"priority": _("backend '%(alias)s': %(error)s") % {"alias": alias, "error": exc}}
    return {}
