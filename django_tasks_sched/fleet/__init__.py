"""Runs on worker fleets: a task with a ``backend`` is run by that ``django.tasks`` backend.

- :mod:`.handoff`: the scheduler's side (enqueue claimed runs, find lost messages);
- :mod:`.tasks`: the one task enqueued, and what a worker does with it;
- :mod:`.validation`: ``full_clean()`` of ``backend``, ``queue_name`` and ``priority``;
- :mod:`.compat`: ``django.tasks`` (Django 6) or the ``django-tasks`` backport (Django 5.2).

``django.tasks`` (or its backport), the backends and Celery are imported only when a task names
a backend: the scheduler imports :mod:`.handoff`, which needs nothing but this app.
"""
