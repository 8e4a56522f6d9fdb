"""The Task form: JSON as text, validated exactly as ``Task.full_clean()`` validates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.contrib.admin.widgets import AdminTextareaWidget, AdminTextInputWidget
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from django_tasks_sched import bounds
from django_tasks_sched.models import NO_NUL, Task
from django_tasks_sched.options import TASK_OPTIONS
from django_tasks_sched.triggers import TRIGGER_KEYS

#: The JSON fields and the value an empty text box stands for (the model's default).
JSON_DEFAULTS: Mapping[str, type[list[Any]] | type[dict[str, Any]]] = {
    "args": list,
    "kwargs": dict,
    "trigger_config": dict,
}

#: When a field fails at the form level (bad JSON, unknown choice), the model never saw its
#: value and checked the default instead; its own errors, and those of the fields checked
#: together with it, would only describe that default. These are dropped.
DEPENDENT_FIELDS: Mapping[str, frozenset[str]] = {
    "trigger": frozenset({"trigger", "trigger_config"}),
    "trigger_config": frozenset({"trigger_config"}),
    "func": frozenset({"func", "args", "kwargs"}),
    "args": frozenset({"args", "kwargs"}),
    "kwargs": frozenset({"args", "kwargs"}),
}


def trigger_keys_help() -> SafeString:
    """One line per trigger listing its ``trigger_config`` keys, as safe HTML."""
    rows = [
        (Task.Trigger(trigger).label, trigger, ", ".join(names))
        for trigger, names in TRIGGER_KEYS.items()
    ]
    return format_html(
        "{}<br>{}",
        _("Keys by trigger:"),
        format_html_join(mark_safe("<br>"), "<b>{}</b> (<code>{}</code>): <code>{}</code>", rows),
    )


class JSONTextField(forms.JSONField):
    """JSON typed as text, where a box holding only whitespace counts as empty."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            value = ""
        try:
            return super().to_python(value)
        except RecursionError:
            # json.loads recurses once per level: "[[[[..." a few thousand deep overflows.
            raise ValidationError(
                _("Nested more than %(limit)d levels deep."),
                code="invalid",
                params={"limit": bounds.MAX_JSON_DEPTH},
            ) from None

    def bound_data(self, data: Any, initial: Any) -> Any:
        # Re-displaying the rejected text parses it again, with the same overflow.
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)


class TaskForm(forms.ModelForm):
    """Edits a Task; ``trigger_config``, ``args`` and ``kwargs`` are JSON text boxes."""

    class Meta:
        model = Task
        fields = [
            "name",
            "description",
            "func",
            "args",
            "kwargs",
            "trigger",
            "trigger_config",
            "active",
            "inactive_reason",
            *TASK_OPTIONS,
        ]
        field_classes = dict.fromkeys(JSON_DEFAULTS, JSONTextField)
        widgets = {
            "args": AdminTextareaWidget(attrs={"rows": 2, "class": "vLargeTextField dts-json"}),
            "kwargs": AdminTextareaWidget(attrs={"rows": 2, "class": "vLargeTextField dts-json"}),
            "trigger_config": AdminTextareaWidget(
                attrs={"rows": 3, "class": "vLargeTextField dts-json"}
            ),
            "description": AdminTextareaWidget(attrs={"rows": 3}),
            # Room for a real dotted path ("myproject.reports.jobs:send_invoices").
            "func": AdminTextInputWidget(attrs={"class": "vTextField dts-callable"}),
        }

    #: Fields the scheduler writes too (it counts runs down, switches tasks off): the form
    #: posts the value it showed, so a change is told from the page's own load, and an
    #: unchanged one is not written back over the scheduler's (``TaskAdmin.save_model``).
    SCHEDULER_WRITES = ("active", "inactive_reason", "remaining_runs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.SCHEDULER_WRITES:
            if name in self.fields:
                self.fields[name].show_hidden_initial = True
        field = self.fields.get("trigger_config")
        keys_help = trigger_keys_help()
        if field is not None:
            # Admin renders help text as HTML; the model's text is plain, so escape it.
            field.help_text = format_html("{}<br>{}", field.help_text, keys_help)

    def _clean_json(self, name: str) -> Any:
        value = self.cleaned_data.get(name)
        # An empty box means "the default", not JSON null (which the column cannot hold);
        # an explicit ``null`` is left for the model to refuse with its own message.
        if value is None and not str(self[name].data or "").strip():
            return JSON_DEFAULTS[name]()
        return value

    def clean_args(self) -> Any:
        return self._clean_json("args")

    def clean_kwargs(self) -> Any:
        return self._clean_json("kwargs")

    def clean_trigger_config(self) -> Any:
        return self._clean_json("trigger_config")

    def add_error(self, field: str | None, error: Any) -> None:
        """File model errors under their fields, never raising for a field the form lacks.

        ``Task.clean()`` keys its errors by field, and ``ModelForm`` passes them here as one
        dict; ``add_error`` raises ``ValueError`` for a key the form does not have (a field
        made read-only), so those become non-field errors instead of a crash.
        """
        if field is not None or not hasattr(error, "error_dict"):
            super().add_error(field, error)
            return
        failed = {name for name in getattr(self, "_errors", None) or {} if name in DEPENDENT_FIELDS}
        suppressed = set().union(*(DEPENDENT_FIELDS[name] for name in failed))
        remapped: dict[str, list[ValidationError]] = {}
        for name, messages in error.error_dict.items():
            if name in suppressed:
                continue
            key = name if name == NON_FIELD_ERRORS or name in self.fields else NON_FIELD_ERRORS
            remapped.setdefault(key, []).extend(messages)
        if remapped:
            super().add_error(None, ValidationError(remapped))


class PauseForm(forms.Form):
    """Why tasks are deactivated (the admin's action asks)."""

    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        required=False,
        validators=NO_NUL,
        help_text=_(
            'Shown with the task while it is inactive, e.g. "paused during the migration".'
        ),
        widget=forms.TextInput(attrs={"size": 60}),
    )


class BackfillForm(forms.Form):
    """A range of a task's schedule to backfill (the admin's backfill page)."""

    start = forms.DateTimeField(
        label=_("From"),
        help_text=_("Included. In the site's time zone."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    end = forms.DateTimeField(
        label=_("Until"),
        help_text=_("Excluded."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
