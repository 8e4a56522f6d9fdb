"""Dates in trigger configs: ISO 8601 parsing, time zones, and local (wall-clock) times.

Instants are handled as naive UTC datetimes inside the cron seam (cheap to compare and add) and
as aware UTC datetimes everywhere else. Aware datetimes that share one ``ZoneInfo`` compare by
wall time and ignore ``fold``, which is wrong inside a repeated hour; UTC has no such trap.
"""

from __future__ import annotations

import bisect
from datetime import date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils.dateparse import parse_date, parse_datetime

UTC = timezone.utc
ONE_SECOND = timedelta(seconds=1)
# Transitions found so far, per zone (a handful each: two a year, around the dates in use).
_known_transitions: dict[tzinfo, tuple[datetime, ...]] = {}
_KNOWN_PER_ZONE = 32


def default_zone() -> ZoneInfo:
    """The zone of Django's ``TIME_ZONE`` setting, read now (never at import time)."""
    from django.conf import settings

    return ZoneInfo(getattr(settings, "TIME_ZONE", None) or "UTC")


def get_zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; raises ``ValueError`` when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        # ZoneInfoNotFoundError is a KeyError; callers only need to catch ValueError.
        raise ValueError(name) from exc


def zone_name(zone: tzinfo) -> str:
    """The IANA key of ``zone`` (or its ``str`` for zones that have none)."""
    return getattr(zone, "key", None) or str(zone)


def parse_iso(value: str) -> datetime:
    """Parse an ISO 8601 date or date/time; a date alone means midnight. May return naive."""
    try:
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            if day is not None:
                parsed = datetime.combine(day, datetime.min.time())
    except ValueError:
        # Well-formed but impossible, e.g. month 13 or 30 February.
        parsed = None
    if parsed is None:
        raise ValueError(value)
    return parsed


def offset_at(zone: tzinfo, instant: datetime) -> timedelta:
    """The UTC offset of ``zone`` at ``instant`` (a naive UTC datetime)."""
    offset = zone.fromutc(instant.replace(tzinfo=zone)).utcoffset()
    return offset if offset is not None else timedelta(0)


def find_transition(zone: tzinfo, before: datetime, after: datetime) -> datetime:
    """The first instant in ``(before, after]`` with the offset ``zone`` has at ``after``.

    Both bounds are naive UTC datetimes whose offsets differ, with one change between them.
    ``zoneinfo`` does not expose its transitions, so bisect on whole seconds (tzdb changes fall
    on whole seconds): about 17 probes for a day-long window. Found changes are remembered per
    zone, as every task in that zone asks for the same few.
    """
    known = _known_transitions.get(zone, ())
    index = bisect.bisect_right(known, before)
    if index < len(known) and known[index] <= after:
        return known[index]
    lo = before.replace(microsecond=0)
    hi = after
    start_offset = offset_at(zone, lo)
    while hi - lo > ONE_SECOND:
        mid = lo + timedelta(seconds=(hi - lo) // ONE_SECOND // 2)
        if offset_at(zone, mid) == start_offset:
            lo = mid
        else:
            hi = mid
    # Replaced, never mutated, so readers in other threads always see a sorted tuple.
    _known_transitions[zone] = tuple(sorted({*known[-_KNOWN_PER_ZONE:], hi}))
    return hi


def wall_to_instant(wall: datetime, zone: tzinfo) -> datetime:
    """The aware UTC instant at which the clock in ``zone`` reads ``wall`` (naive).

    This is the one place a naive local time becomes an instant. An ambiguous wall time (the
    hour repeated in autumn) is its first occurrence (``fold=0``). A wall time that never
    occurs (skipped in spring) becomes the first valid instant after the gap: the change
    itself, so "02:30" on the spring-forward day in New York is 03:00 EDT.
    """
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In a gap, fold=0 reads the wall time with the offset from before the change (an
    # instant after it) and fold=1 with the offset from after it (an instant before it).
    early = wall.replace(tzinfo=zone, fold=1).astimezone(UTC).replace(tzinfo=None)
    late = instant.replace(tzinfo=None)
    return find_transition(zone, early, late).replace(tzinfo=UTC)


def to_instant(value: datetime | date, zone: tzinfo) -> datetime:
    """An aware UTC instant from a datetime (naive ones read in ``zone``) or a date."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, datetime.min.time())
    if value.tzinfo is None or value.utcoffset() is None:
        return wall_to_instant(value.replace(tzinfo=None), zone)
    return value.astimezone(UTC)


def format_local(instant: datetime, zone: tzinfo) -> str:
    """``instant`` as the wall time in ``zone``: ``2026-05-01 09:00`` (seconds when set)."""
    local = instant.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")
