"""URLs of the example project: the admin, and the REST API under /scheduler/."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    # The REST API (django-tasks-sched[api]); log in to the admin first, or use HTTP Basic.
    path("scheduler/", include("django_tasks_sched.api.urls")),
    path("", RedirectView.as_view(url="/admin/django_tasks_sched/task/", permanent=False)),
]
