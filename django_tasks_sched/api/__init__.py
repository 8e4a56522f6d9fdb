"""The REST API: Flask-APScheduler's endpoints and JSON, on Django REST framework.

Optional (``pip install "django-tasks-sched[api]"``); only this sub-package imports REST
framework. Mount it with ``path("scheduler/", include("django_tasks_sched.api.urls"))``.
"""
