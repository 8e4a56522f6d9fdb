from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [path("admin/", admin.site.urls)]
if settings.HAS_REST_FRAMEWORK:
    urlpatterns.append(path("scheduler/", include("django_tasks_sched.api.urls")))
