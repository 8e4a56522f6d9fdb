"""Alerts: on failure, on a missed fire, no success for N minutes, no scheduler alive.

Sent once per change of state (:mod:`.states`), evaluated by :mod:`.evaluate` in each
scheduler's alert thread (:mod:`django_tasks_sched.service.alerting`) and by
``manage.py checkalerts``, sent through :mod:`.channels`; the settings are :mod:`.config`.
See docs/alerts.md.
"""
