from __future__ import annotations

from django.db import migrations

from django_tasks_sched.migrations_ops import RemoveTask


class Migration(migrations.Migration):
    dependencies = [("migrating", "0001_create_tasks")]

    operations = [
        RemoveTask(
            "migrated-doomed",
            func="tests.testapp.jobs:noop",
            trigger="cron",
            trigger_config={"hour": 4},
        ),
    ]
