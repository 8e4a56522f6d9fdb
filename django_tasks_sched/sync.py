"""Keep the Task table in step with the declared tasks (``synctasks``; ``runscheduler`` at start).

The rules, which make a sync safe to run on every start of every scheduler process:

- A declared task with no row is **created** (``source`` says where it was declared, and
  ``declared_fields`` which fields the declaration owns).
- A row whose declaration changed has exactly the **declared fields updated**. A field the
  declaration stops setting goes back to the model's default, and is the admin's from then on.
- ``active`` and every field the declaration does not set **belong to the admin**: a sync never
  changes them. An admin's deactivation survives every sync and restart.
- A declared row whose declaration disappeared is **retired**: made inactive with a reason,
  its history kept, and from then on wholly the admin's (``declared_fields`` is emptied, so
  later syncs leave it alone). If the declaration comes back, the task is taken back, and
  switched on again only if the retirement is what switched it off (``retired_at``).
- A declaration that cannot be read or validated changes nothing: its row stays as it is, and
  a source read only in part retires nothing.

Idempotent: a second sync with the same declarations changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Field
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_tasks_sched import audit
from django_tasks_sched.declarations import Collected, Declaration, collect, describe_error
from django_tasks_sched.jobspec import DECLARABLE_FIELDS
from django_tasks_sched.models import Task, TaskChange

logger = logging.getLogger(__name__)

REASON_LIMIT = Task._meta.get_field("inactive_reason").max_length or 255


@dataclass
class SyncReport:
    """What a sync did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    reactivated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.retired)

    def lines(self) -> list[str]:
        """The report for people, one line per task changed, then a summary."""
        out = [_("Created %(name)s") % {"name": name} for name in self.created]
        for name, names in self.updated.items():
            out.append(
                _("Updated %(name)s: %(fields)s") % {"name": name, "fields": ", ".join(names)}
            )
        out += [_("Switched on again %(name)s") % {"name": name} for name in self.reactivated]
        out += [_("Retired %(name)s") % {"name": name} for name in self.retired]
        out += [_("Error: %(error)s") % {"error": error} for error in self.errors]
        counts = {
            "created": len(self.created),
            "updated": len(self.updated),
            "retired": len(self.retired),
            "unchanged": len(self.unchanged),
        }
        summary = ngettext(
            "%(created)d created, %(updated)d updated, %(retired)d retired, %(unchanged)d "
            "declared task unchanged.",
            "%(created)d created, %(updated)d updated, %(retired)d retired, %(unchanged)d "
            "declared tasks unchanged.",
            counts["unchanged"],
        )
        out.append(summary % counts)
        if self.dry_run:
            out.append(_("Dry run: nothing was saved."))
        return out


def sync_tasks(*, dry_run: bool = False) -> SyncReport:
    """Create, update and retire the declared tasks (see the module docstring)."""
    report = SyncReport(dry_run=dry_run)
    # Decorated functions are found by importing their modules; rows from earlier syncs
    # name theirs, so a declaration outside the autodiscovered modules is not lost.
    refs = Task.objects.filter(source=Task.Source.DECORATOR).values_list("source_ref", flat=True)
    collected = collect(list(refs))
    report.errors += [str(error) for error in collected.errors]
    # runscheduler's sync at start-up comes here too: recorded as synctasks, not the scheduler.
    with audit.recording(TaskChange.Via.SYNCTASKS):
        if dry_run:
            # The same code path, rolled back: the report is exactly what a real sync would do.
            with transaction.atomic():
                _apply(collected, report)
                transaction.set_rollback(True)
        else:
            _apply(collected, report)
    return report


def sync_at_startup() -> SyncReport | None:
    """``runscheduler``'s sync: log what changed; a failure never stops the scheduler starting."""
    try:
        report = sync_tasks()
    except Exception:
        logger.exception("Syncing the declared tasks failed; starting with the table as it is")
        return None
    for error in report.errors:
        logger.error("Declared task not synced: %s", error)
    logger.info(
        "Declared tasks synced: %d created %s, %d updated %s, %d retired %s, %d unchanged",
        len(report.created),
        report.created,
        len(report.updated),
        sorted(report.updated),
        len(report.retired),
        report.retired,
        len(report.unchanged),
    )
    return report


# -- applying ----------------------------------------------------------------------------------


def _apply(collected: Collected, report: SyncReport) -> None:
    names = [d.name for d in collected.declarations]
    rows = {task.name: task for task in Task.objects.filter(name__in=names)}
    for declaration in collected.declarations:
        _apply_one(declaration, rows.get(declaration.name), report)
    _retire(collected, set(names), report)


def _apply_one(declaration: Declaration, row: Task | None, report: SyncReport) -> None:
    if row is None:
        row = _create(declaration, report)
        if row is None:
            return
    changes = plan(row, declaration)
    if not changes:
        report.unchanged.append(declaration.name)
        return
    for name, value in changes.items():
        setattr(row, name, value)
    try:
        row.full_clean(validate_unique=False)
    except ValidationError as exc:
        report.errors.append(f"{declaration.source_ref}: {describe_error(exc)}")
        return
    row.save(update_fields=[*changes, "updated_at"])
    if "active" in changes:
        report.reactivated.append(declaration.name)
    report.updated[declaration.name] = sorted(changes)


def _create(declaration: Declaration, report: SyncReport) -> Task | None:
    """Insert the row; returns the existing row instead if another process inserted it first."""
    task = Task(
        name=declaration.name,
        source=declaration.source,
        source_ref=declaration.source_ref,
        declared_fields=sorted(declaration.fields),
        **{**declaration.fields, **declaration.initial},
    )
    try:
        task.full_clean(validate_unique=False)
    except ValidationError as exc:
        report.errors.append(f"{declaration.source_ref}: {describe_error(exc)}")
        return None
    try:
        with transaction.atomic():
            task.save(force_insert=True)
    except IntegrityError:
        # Two scheduler processes starting at once both create: the loser updates instead.
        existing = Task.objects.filter(name=declaration.name).first()
        if existing is None:
            raise
        return existing
    report.created.append(declaration.name)
    return None


def plan(row: Task, declaration: Declaration) -> dict[str, Any]:
    """The field changes that bring ``row`` in step with ``declaration`` (empty: none)."""
    changes: dict[str, Any] = {
        name: value for name, value in declaration.fields.items() if getattr(row, name) != value
    }
    for name in row.declared_fields or []:
        # Declared before, not any more: code's value goes, the default (the admin's) comes.
        if name not in declaration.fields and name in DECLARABLE_FIELDS:
            default = model_default(name)
            if getattr(row, name) != default:
                changes[name] = default
    declared = sorted(declaration.fields)
    for name, value in (
        ("source", declaration.source),
        ("source_ref", declaration.source_ref),
        ("declared_fields", declared),
    ):
        if getattr(row, name) != value:
            changes[name] = value
    if row.retired_at is not None:
        changes["retired_at"] = None
        if not row.active:
            # Switched off by the retirement, untouched since: the comeback switches it on.
            changes["active"] = True
            changes["inactive_reason"] = ""
    return changes


def _retire(collected: Collected, declared: set[str], report: SyncReport) -> None:
    sources = collected.complete & Task.DECLARED_SOURCES
    if not sources:
        return
    gone = Task.objects.filter(source__in=sources).exclude(name__in=declared).order_by("name")
    for row in gone:
        # An empty declared_fields means retired already: the row is the admin's now.
        if row.name in collected.blocked or not row.declared_fields:
            continue
        fields = ["declared_fields", "updated_at"]
        row.declared_fields = []
        if row.active:
            row.active = False
            row.inactive_reason = retirement_reason(row)
            row.retired_at = timezone.now()
            fields += ["active", "inactive_reason", "retired_at"]
        row.save(update_fields=fields)
        report.retired.append(row.name)


def model_default(name: str) -> Any:
    """The default of the Task field ``name``."""
    model_field = Task._meta.get_field(name)
    assert isinstance(model_field, Field)
    return model_field.get_default()


def retirement_reason(row: Task) -> str:
    """Why a retired task is inactive, for its ``inactive_reason``."""
    reason = _("No longer declared (it was: %(source)s, %(ref)s); retired by synctasks.") % {
        "source": row.get_source_display(),
        "ref": row.source_ref or "-",
    }
    if row.source == Task.Source.DECORATOR:
        reason += " " + _(
            "A decorated function counts only if its module is imported during the sync."
        )
    if len(reason) > REASON_LIMIT:
        reason = reason[: REASON_LIMIT - 3] + "..."
    return reason
