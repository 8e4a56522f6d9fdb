#!/usr/bin/env bash
# Prepare and run the example project: migrate, admin user, example tasks, then the scheduler
# and the dev server together.
# `make demo` calls this once .venv is ready. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${VENV:-.venv}/bin/python
host=${DEMO_HOST:-127.0.0.1}
port=${DEMO_PORT:-8000}
export DJANGO_SETTINGS_MODULE=example_project.settings
# The demo user: fixed and public on purpose. The example settings are for local use only.
export DJANGO_SUPERUSER_USERNAME=admin DJANGO_SUPERUSER_PASSWORD=admin
export DJANGO_SUPERUSER_EMAIL=admin@example.com

say() { printf '==> %s\n' "$*"; }

say "migrating the example database (${DATABASE_URL:-example_project/db.sqlite3})"
"$python" manage.py migrate --noinput -v 0

# createsuperuser --noinput fails when the user exists, so ask first; an existing admin keeps
# whatever password it was given.
if "$python" - <<'PY'
import sys

import django

django.setup()
from django.contrib.auth import get_user_model

sys.exit(0 if get_user_model().objects.filter(username="admin").exists() else 1)
PY
then
    say "superuser 'admin' exists (its password is left as it is)"
else
    say "creating superuser admin / admin"
    "$python" manage.py createsuperuser --noinput
fi

say "loading the example tasks"
"$python" manage.py loadexampletasks

# The scheduler runs beside the dev server, as it would beside gunicorn in production; its log
# (one line per run) goes to this terminal too. It is stopped whenever this script exits.
scheduler_pid=
cleanup() {
    if [[ -n $scheduler_pid ]] && kill -0 "$scheduler_pid" 2>/dev/null; then
        say "stopping the scheduler (pid $scheduler_pid)"
        kill -TERM "$scheduler_pid" 2>/dev/null || true
        wait "$scheduler_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
say "starting the scheduler: manage.py runscheduler"
"$python" manage.py runscheduler &
scheduler_pid=$!

admin=http://$host:$port/admin
cat <<EOF_BANNER

  ============================================================
   django-tasks-sched demo
     Log in at  $admin/
     User       admin
     Password   admin
     Tasks      $admin/django_tasks_sched/task/
     Runs       $admin/django_tasks_sched/taskrun/
                (the heartbeat task runs every 10 seconds;
                 always-fails shows a failed run with its traceback)
     Scheduler  manage.py runscheduler, logging below
     Stop       Ctrl-C
  ============================================================

EOF_BANNER

"$python" manage.py runserver "$host:$port"
