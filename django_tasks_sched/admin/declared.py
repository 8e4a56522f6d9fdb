"""Declared tasks in the admin: where each was declared, and its code-owned fields read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_tasks_sched.models import Task
from django_tasks_sched.times import time_text

#: Where to change a declared task, by source.
WHERE_TO_CHANGE = {
    Task.Source.DECORATOR: _("the @scheduler.task decorator on %(ref)s"),
    Task.Source.SETTINGS: _("%(ref)s in your settings"),
    Task.Source.PYPROJECT: _("%(ref)s"),
}


def owned_fields(obj: Task | None) -> list[str]:
    """The fields a declaration owns on ``obj`` (read-only in the admin)."""
    return [] if obj is None else obj.owned_fields()


class DeclaredTaskAdminMixin(admin.ModelAdmin):
    """For ``TaskAdmin``: the declaration note, and declared fields made read-only."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly + [name for name in owned_fields(obj) if name not in readonly]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change and "active" in form.changed_data:
            # Switched on or off by hand: a returning declaration must not undo it.
            obj.retired_at = None
        super().save_model(request, obj, form, change)

    @admin.display(description=_("declaration"))
    def declaration(self, obj: Task) -> str | SafeString:
        """Where the task was declared, which fields that owns, and where to change them."""
        if obj.source == Task.Source.DATABASE:
            return gettext("Created in the database (admin, shell or API); every field is yours.")
        if obj.source == Task.Source.MIGRATION:
            return gettext(
                "Created by a data migration (%(ref)s); every field is yours to edit."
            ) % {"ref": obj.source_ref or "-"}
        owned = owned_fields(obj)
        if not owned:
            when = time_text(obj.retired_at) if (obj.retired_at) else ""
            return format_html(
                "{} {}",
                gettext("Its declaration (%(ref)s) disappeared, so it was retired %(when)s.")
                % {"ref": obj.source_ref or "-", "when": when},
                gettext("Every field is yours now: edit it, switch it on, or delete it."),
            )
        where = WHERE_TO_CHANGE[Task.Source(obj.source)] % {"ref": obj.source_ref}
        labels = ", ".join(
            str(getattr(Task._meta.get_field(name), "verbose_name", name)) for name in owned
        )
        return format_html(
            '<p class="dts-note">{}</p><p>{}</p>',
            gettext("Declared in %(source)s: %(where)s.")
            % {"source": obj.get_source_display(), "where": where},
            gettext(
                "Read-only here, because the declaration owns them: %(fields)s. Change them "
                "where the task is declared; manage.py synctasks (and the scheduler at start) "
                "keeps this task in step. Active and the other fields are yours: a sync never "
                "changes them."
            )
            % {"fields": labels},
        )
