"""The cron trigger: wall-clock matches in a time zone, mapped to instants by cron's DST rule.

APScheduler 3.11's ``CronTrigger`` does its arithmetic on aware local datetimes and, in the hour
that repeats in autumn, returns fire times twice. Here the two concerns are split: a *wall
clock* (a parsed crontab, or an APScheduler ``CronTrigger`` run in UTC, where it cannot meet a
daylight-saving change) enumerates matching local times, and :class:`ZonedCronTrigger` maps
them onto real instants one constant-offset stretch of the zone at a time.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger

from django_tasks_sched.triggers.crontab import Crontab
from django_tasks_sched.triggers.dates import (
    ONE_SECOND,
    UTC,
    find_transition,
    offset_at,
    to_instant,
    zone_name,
)
from django_tasks_sched.triggers.fields import FieldWallClock

# Looking back this far from the start catches a change that just happened (the repeated or
# skipped stretch it leaves behind); every real DST shift is shorter.
_LOOKBACK = timedelta(hours=3)
# Each step checks this much of the zone's future for an offset change ...
_HORIZON = timedelta(hours=27)
# ... and may jump to this far before a distant candidate: more than any offset swing
# (Samoa's 2011 date-line move was 24 h), so no fire is skipped by the jump.
_JUMP = timedelta(hours=26)
# Each step advances by a day or more, or to the next change; the cap only guards a bug.
_MAX_STEPS = 1000
_ONE_MICROSECOND = timedelta(microseconds=1)


class ZonedCronTrigger(BaseTrigger):
    """A cron schedule in a time zone, firing by cron's daylight-saving rule.

    A schedule whose minute and hour are both fixed is a *wall-clock* job: a matching local time
    skipped in spring fires once, at the change (several skipped times still fire once); one
    that occurs twice in autumn fires at its first occurrence only. Any other schedule follows
    real time: it fires whenever the local clock reads a matching time, so never in the skipped
    stretch and in both passes of a repeated one. Fire times are returned as aware UTC
    datetimes, which compare correctly whatever zone the caller's ``now`` is in.
    """

    __slots__ = ("end_date", "jitter", "start_date", "timezone", "walls")

    def __init__(
        self,
        walls: Crontab | FieldWallClock,
        timezone: tzinfo,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        jitter: float | None = None,
    ) -> None:
        self.walls = walls
        self.timezone = timezone
        self.start_date = None if start_date is None else to_instant(start_date, timezone)
        self.end_date = None if end_date is None else to_instant(end_date, timezone)
        self.jitter = jitter or None

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The next fire after ``previous_fire_time`` (or from ``now``), jitter included."""
        nominal = self.nominal_fire_time(previous_fire_time, now)
        if nominal is None or not self.jitter:
            return nominal
        # As APScheduler's BaseTrigger._apply_jitter, then capped at end_date as CronTrigger does.
        jittered = nominal + timedelta(seconds=random.uniform(0, self.jitter))
        return min(jittered, self.end_date) if self.end_date else jittered

    def nominal_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """As :meth:`get_next_fire_time`, without jitter."""
        now_utc = self._as_utc(now)
        if previous_fire_time is not None:
            # CronTrigger's rule: continue after the previous fire, unless now is earlier.
            previous = self._as_utc(previous_fire_time)
            start = min(now_utc, previous + _ONE_MICROSECOND)
            if start == previous:
                start += _ONE_MICROSECOND
        else:
            start = max(now_utc, self._as_utc(self.start_date)) if self.start_date else now_utc
        try:
            found = self._first_fire_from(start)
        except OverflowError:
            return None  # the search ran past datetime.max: the schedule never fires again
        if found is None:
            return None
        fire = found.replace(tzinfo=UTC)
        if self.end_date and fire > self.end_date:
            return None
        return fire

    def _as_utc(self, value: datetime) -> datetime:
        """A naive UTC datetime (naive input is read in the trigger's zone)."""
        return to_instant(value, self.timezone).replace(tzinfo=None)

    def _first_fire_from(self, start: datetime) -> datetime | None:
        """The earliest fire at or after ``start``; both are naive UTC datetimes.

        The zone's timeline is walked in stretches of constant offset. Inside one, a wall time
        ``w`` is the instant ``w - offset`` and walls grow with instants, so the first matching
        wall from the stretch's start gives its first fire. At a change between stretches:

        * spring forward (offset grows): the walls between the old and new reading never occur.
          A wall-clock job with a match among them fires once, at the change itself.
        * fall back (offset shrinks): the walls just before the change are read again. A
          wall-clock job skips them (``floor``); a real-time job fires on them again.

        The walk starts a little before ``start`` so that a change just behind it is seen
        (``start`` may sit inside a repeated hour, or exactly on a spring-forward change).
        """
        zone, walls, end = self.timezone, self.walls, self.end_date
        end_naive = end.replace(tzinfo=None) if end is not None else None
        wall_clock = walls.wall_clock
        u = start.replace(microsecond=0) - _LOOKBACK
        floor: datetime | None = None
        for _ in range(_MAX_STEPS):
            if end_naive is not None and u > end_naive:
                return None
            offset = offset_at(zone, u)
            probe = u + _HORIZON
            changes = offset_at(zone, probe) != offset
            stretch_end = find_transition(zone, u, probe) if changes else probe
            candidate: datetime | None = None
            lo = max(u, start)
            if lo < stretch_end:
                wall = _ceil_second(lo + offset)
                if floor is not None and floor > wall:
                    wall = floor
                match = walls.next_match(wall)
                if match is None:
                    return None
                candidate = match - offset
                if candidate < stretch_end:
                    return candidate
            if changes:
                new_offset = offset_at(zone, stretch_end)
                if new_offset > offset:
                    if wall_clock and stretch_end >= start:
                        skipped = walls.next_match(stretch_end + offset)
                        if skipped is not None and skipped < stretch_end + new_offset:
                            return stretch_end
                    floor = None
                else:
                    floor = stretch_end + offset if wall_clock else None
                u = stretch_end
            elif candidate is not None:
                # No match for a while: leap to just before it rather than a day at a time.
                u = max(stretch_end, candidate - _JUMP)
            else:
                u = stretch_end
        raise RuntimeError(f"{self!r}: no fire time found after {_MAX_STEPS} steps")

    def __str__(self) -> str:
        if isinstance(self.walls, Crontab):
            return f"cron[crontab='{self.walls.expression}', timezone='{zone_name(self.timezone)}']"
        return f"cron[{self.walls}, timezone='{zone_name(self.timezone)}']"

    def __repr__(self) -> str:
        if isinstance(self.walls, Crontab):
            options = [f"crontab='{self.walls.expression}'"]
        else:
            options = [str(self.walls)]
        if self.start_date:
            options.append(f"start_date='{self.start_date.isoformat()}'")
        if self.end_date:
            options.append(f"end_date='{self.end_date.isoformat()}'")
        if self.jitter:
            options.append(f"jitter={self.jitter}")
        options.append(f"timezone='{zone_name(self.timezone)}'")
        return f"<{type(self).__name__} ({', '.join(options)})>"


def _ceil_second(value: datetime) -> datetime:
    if value.microsecond:
        return value.replace(microsecond=0) + ONE_SECOND
    return value
