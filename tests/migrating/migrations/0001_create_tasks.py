from __future__ import annotations

from django.db import migrations

from django_tasks_sched.migrations_ops import CreateTask


class Migration(migrations.Migration):
    dependencies = [("django_tasks_sched", "0002_task_declared_fields_task_retired_at")]

    operations = [
        CreateTask(
            "migrated-tick",
            "tests.testapp.jobs:add",
            "interval",
            {"seconds": 1},
            args=[20, 22],
            description="Created by a data migration",
        ),
        CreateTask("migrated-doomed", "tests.testapp.jobs:noop", "cron", {"hour": 4}),
    ]
