"""How this app writes a time for people: unambiguous across locales, with its zone.

"2026-03-01 09:00:00 CET": the admin, ``explaintask`` and messages all write times so, in the
site's zone unless a task's own zone is meant (its fire-time preview).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from django.utils import timezone
from django.utils.dateformat import format as format_date

DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s T"


def time_text(value: datetime, zone: tzinfo | None = None) -> str:
    """``value`` in ``zone`` (default: the current zone) as text, e.g. "2026-03-01 09:00:00 CET"."""
    return format_date(timezone.localtime(value, zone), f"{DATE_FORMAT} {TIME_FORMAT}")
