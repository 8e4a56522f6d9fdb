"""``path("scheduler/", include("django_tasks_sched.api.urls"))``: Flask-APScheduler's routes.

Paths have no trailing slash, as Flask-APScheduler's. A job id may hold ``/`` (a task name
can); one ending in ``/pause``, ``/resume``, ``/run`` or ``/runs`` is reached by its actions'
routes first.
"""

from __future__ import annotations

from django.urls import path, re_path

from django_tasks_sched.api.views.jobs import (
    URL_NAMESPACE,
    JobActionView,
    JobDetailView,
    JobListView,
    JobPauseView,
    JobRunView,
)
from django_tasks_sched.api.views.runs import (
    JobRunsView,
    RunCancelView,
    RunDetailView,
    RunListView,
)
from django_tasks_sched.api.views.scheduler import (
    FiringView,
    NotFoundView,
    OpenAPIView,
    SchedulerInfoView,
)

app_name = URL_NAMESPACE

JOB = r"^jobs/(?P<job_id>[\s\S]+)"

urlpatterns = [
    path("", SchedulerInfoView.as_view(), name="info"),
    path("pause", FiringView.as_view(on=False), name="pause"),
    path("resume", FiringView.as_view(on=True), name="resume"),
    path("shutdown", FiringView.as_view(on=False, strict=True), name="shutdown"),
    path("start", FiringView.as_view(on=True, strict=True), name="start"),
    path("jobs", JobListView.as_view(), name="jobs"),
    re_path(JOB + r"/pause$", JobPauseView.as_view(), name="pause-job"),
    re_path(JOB + r"/resume$", JobActionView.as_view(action="resume"), name="resume-job"),
    re_path(JOB + r"/run$", JobRunView.as_view(), name="run-job"),
    re_path(JOB + r"/runs$", JobRunsView.as_view(), name="job-runs"),
    re_path(JOB + r"$", JobDetailView.as_view(), name="job"),
    path("runs", RunListView.as_view(), name="runs"),
    path("runs/<int:run_id>", RunDetailView.as_view(), name="run"),
    path("runs/<int:run_id>/cancel", RunCancelView.as_view(), name="cancel-run"),
    path("openapi.json", OpenAPIView.as_view(), name="schema"),
    # Last: any other path under the prefix answers 404 in the API's JSON.
    re_path(r"^", NotFoundView.as_view()),
]
