"""Every way of changing tasks moves the change stamp once, after commit; bookkeeping does not."""

from __future__ import annotations

from django.core.management import call_command
from django.db import transaction
from django.test import TransactionTestCase

from django_tasks_sched.changes import current_version
from django_tasks_sched.models import Task


def new_task(name: str = "t", **fields: object) -> Task:
    fields.setdefault("func", "tests.testapp.jobs:noop")
    fields.setdefault("trigger", Task.Trigger.INTERVAL)
    fields.setdefault("trigger_config", {"minutes": 5})
    return Task(name=name, **fields)


class StampTests(TransactionTestCase):
    """Real commits (no wrapping test transaction), as in production."""

    def bumps(self, action: object) -> int:
        """How far the stamp moved over ``action`` (autocommit: on_commit runs at once)."""
        before = current_version()
        action()  # type: ignore[operator]
        return current_version() - before

    def test_save_and_delete_bump(self) -> None:
        task = new_task()
        assert self.bumps(task.save) == 1
        assert self.bumps(task.delete) == 1

    def test_queryset_update_bumps_and_moves_updated_at(self) -> None:
        task = new_task()
        self.bumps(task.save)
        before = Task.objects.get().updated_at
        assert self.bumps(lambda: Task.objects.filter(pk=task.pk).update(active=False)) == 1
        assert Task.objects.get().updated_at > before

    def test_update_touching_no_row_does_not_bump(self) -> None:
        assert self.bumps(lambda: Task.objects.filter(pk=-1).update(active=False)) == 0

    def test_bulk_create_bumps_once_and_fills_next_run_time(self) -> None:
        tasks = [new_task(f"t{i}") for i in range(50)]
        assert self.bumps(lambda: Task.objects.bulk_create(tasks)) == 1
        assert Task.objects.filter(next_run_time__isnull=False).count() == 50

    def test_many_changes_in_one_transaction_bump_once(self) -> None:
        @transaction.atomic
        def many() -> None:
            for i in range(20):
                new_task(f"t{i}").save()
            Task.objects.all().delete()

        assert self.bumps(many) == 1

    def test_quiet_update_does_not_bump(self) -> None:
        task = new_task()
        self.bumps(task.save)
        assert (
            self.bumps(lambda: Task.objects.filter(pk=task.pk).update_quietly(last_run_status="X"))
            == 0
        )

    def test_run_now_bumps(self) -> None:
        task = new_task()
        self.bumps(task.save)
        assert self.bumps(task.run_now) == 1

    def test_rolled_back_change_does_not_bump(self) -> None:
        before = current_version()
        try:
            with transaction.atomic():
                new_task().save()
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        assert current_version() == before
        assert not Task.objects.exists()
        # ... and a later change still bumps (no stale "pending" state was left behind).
        new_task().save()
        assert current_version() == before + 1

    def test_migrate_bumps(self) -> None:
        before = current_version()
        call_command("migrate", verbosity=0)
        assert current_version() > before
