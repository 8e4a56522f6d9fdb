"""URLs of the example project: the admin is the whole user interface."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/django_tasks_sched/task/", permanent=False)),
]
