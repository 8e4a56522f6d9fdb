"""Sphinx configuration: furo theme, MyST Markdown, autodoc with Django set up."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports the models, which needs configured settings and a populated app registry.
# The test settings suffice: nothing here touches the database.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

import django_tasks_sched  # noqa: E402  (after django.setup())

project = "django-tasks-sched"
author = "django-tasks-sched contributors"
copyright = "django-tasks-sched contributors"
release = django_tasks_sched.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
# The REST API's schema, published beside the pages (docs/rest-api.md).
html_extra_path = ["openapi.json"]
html_title = f"django-tasks-sched {release}"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": False}
# Type hints name Django classes that have no Sphinx inventory here (no network in CI).
nitpicky = False


def _model_fields(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Append a model's fields (verbose name, type, help text) to its docstring.

    The field list then cannot drift from the models: it is read from them at build time.
    """
    from django.db import models

    if what != "class" or not (isinstance(obj, type) and issubclass(obj, models.Model)):
        return
    lines.extend(["", "**Fields**", ""])
    for field in obj._meta.get_fields():
        if not isinstance(field, models.Field):
            continue  # reverse relations: documented on the model that declares them
        help_text = str(field.help_text or "").strip()
        description = help_text or f"{str(field.verbose_name).capitalize()}."
        target = getattr(field.related_model, "__name__", None)
        if target:
            description = f"{description.rstrip('.')} (a :class:`{target}`)."
        if field.choices:
            values = ", ".join(f"``{value}``" for value, _label in field.flatchoices)
            description += f" One of {values}."
        lines.append(f"- ``{field.name}`` ({type(field).__name__}): {description}")
    lines.append("")


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", _model_fields)
