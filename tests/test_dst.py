"""Daylight saving: cron's rule for cron triggers, real elapsed time for intervals.

2024 changes used here:
- America/New_York: spring 10 March 02:00 -> 03:00; autumn 3 November 02:00 -> 01:00.
- Europe/Berlin: spring 31 March 02:00 -> 03:00; autumn 27 October 03:00 -> 02:00.
- Australia/Lord_Howe (a 30-minute shift): autumn 7 April 02:00 -> 01:30; spring 6 October
  02:00 -> 02:30.
"""

from __future__ import annotations

import bisect
import itertools
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from django_tasks_sched.triggers import build_trigger, next_fire_times
from django_tasks_sched.triggers.crontab import parse_crontab
from django_tasks_sched.triggers.dates import wall_to_instant

UTC = timezone.utc
NEW_YORK, BERLIN, LORD_HOWE = "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"


def local_fires(config: dict[str, Any], zone: str, after: str, count: int) -> list[str]:
    """Fire times as local wall times with their offset, e.g. ``03-10 03:00-0400``."""
    tz = ZoneInfo(zone)
    trigger = build_trigger("cron", {**config, "timezone": zone})
    start = datetime.fromisoformat(after).replace(tzinfo=tz)
    times = next_fire_times(trigger, count=count, after=start)
    return [t.astimezone(tz).strftime("%m-%d %H:%M%z") for t in times]


# -- one case per zone, change and kind of job --------------------------------------------------

CASES = [
    # A fixed daily time inside the spring gap fires once, right after the change.
    pytest.param(
        NEW_YORK,
        "30 2 * * *",
        "2024-03-09T00:00",
        ["03-09 02:30-0500", "03-10 03:00-0400", "03-11 02:30-0400"],
        id="new-york-spring-fixed-in-gap",
    ),
    pytest.param(
        BERLIN,
        "30 2 * * *",
        "2024-03-30T00:00",
        ["03-30 02:30+0100", "03-31 03:00+0200", "04-01 02:30+0200"],
        id="berlin-spring-fixed-in-gap",
    ),
    pytest.param(
        LORD_HOWE,
        "15 2 * * *",
        "2024-10-05T00:00",
        ["10-05 02:15+1030", "10-06 02:30+1100", "10-07 02:15+1100"],
        id="lord-howe-spring-fixed-in-gap",
    ),
    # A fixed daily time in the repeated stretch fires once, at its first occurrence.
    pytest.param(
        NEW_YORK,
        "45 1 * * *",
        "2024-11-02T00:00",
        ["11-02 01:45-0400", "11-03 01:45-0400", "11-04 01:45-0500"],
        id="new-york-autumn-fixed-in-repeat",
    ),
    pytest.param(
        BERLIN,
        "30 2 * * *",
        "2024-10-26T00:00",
        ["10-26 02:30+0200", "10-27 02:30+0200", "10-28 02:30+0100"],
        id="berlin-autumn-fixed-in-repeat",
    ),
    pytest.param(
        LORD_HOWE,
        "45 1 * * *",
        "2024-04-06T00:00",
        ["04-06 01:45+1100", "04-07 01:45+1100", "04-08 01:45+1030"],
        id="lord-howe-autumn-fixed-in-repeat",
    ),
    # A job whose hour (or minute) starts with "*" follows real time: nothing in the gap ...
    pytest.param(
        NEW_YORK,
        "0 * * * *",
        "2024-03-10T00:30",
        ["03-10 01:00-0500", "03-10 03:00-0400", "03-10 04:00-0400"],
        id="new-york-spring-hourly",
    ),
    pytest.param(
        BERLIN,
        "*/20 * * * *",
        "2024-03-31T01:30",
        ["03-31 01:40+0100", "03-31 03:00+0200", "03-31 03:20+0200"],
        id="berlin-spring-every-20-minutes",
    ),
    pytest.param(
        LORD_HOWE,
        "*/20 * * * *",
        "2024-10-06T01:30",
        ["10-06 01:40+1030", "10-06 02:40+1100", "10-06 03:00+1100"],
        id="lord-howe-spring-every-20-minutes",
    ),
    # ... and both passes of the repeated stretch.
    pytest.param(
        NEW_YORK,
        "0 * * * *",
        "2024-11-03T00:30",
        ["11-03 01:00-0400", "11-03 01:00-0500", "11-03 02:00-0500", "11-03 03:00-0500"],
        id="new-york-autumn-hourly",
    ),
    pytest.param(
        NEW_YORK,
        "*/20 * * * *",
        "2024-11-03T00:50",
        [
            "11-03 01:00-0400",
            "11-03 01:20-0400",
            "11-03 01:40-0400",
            "11-03 01:00-0500",
            "11-03 01:20-0500",
            "11-03 01:40-0500",
            "11-03 02:00-0500",
        ],
        id="new-york-autumn-every-20-minutes",
    ),
    pytest.param(
        BERLIN,
        "0 * * * *",
        "2024-10-27T01:30",
        ["10-27 02:00+0200", "10-27 02:00+0100", "10-27 03:00+0100"],
        id="berlin-autumn-hourly",
    ),
    pytest.param(
        LORD_HOWE,
        "*/20 * * * *",
        "2024-04-07T01:10",
        ["04-07 01:20+1100", "04-07 01:40+1100", "04-07 01:40+1030", "04-07 02:00+1030"],
        id="lord-howe-autumn-every-20-minutes",
    ),
]


@pytest.mark.parametrize(("zone", "crontab", "after", "expected"), CASES)
def test_cron_daylight_saving_rule(
    zone: str, crontab: str, after: str, expected: list[str]
) -> None:
    assert local_fires({"crontab": crontab}, zone, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("zone", "crontab", "after"),
    [
        (NEW_YORK, "30 2 * * *", "2024-03-05T00:00"),
        (NEW_YORK, "45 1 * * *", "2024-10-29T00:00"),
        (BERLIN, "30 2 * * *", "2024-03-27T00:00"),
        (BERLIN, "30 2 * * *", "2024-10-23T00:00"),
        (LORD_HOWE, "15 2 * * *", "2024-10-02T00:00"),
        (LORD_HOWE, "45 1 * * *", "2024-04-03T00:00"),
        (NEW_YORK, "0 0,2 * * *", "2024-03-05T00:00"),
    ],
)
def test_daily_jobs_skip_no_day_and_double_none(zone: str, crontab: str, after: str) -> None:
    crontab_spec = parse_crontab(crontab)
    per_day = len(crontab_spec.field_values()[1])
    first = datetime.fromisoformat(after)
    just_before = (first - timedelta(minutes=1)).isoformat()
    fires = local_fires({"crontab": crontab}, zone, just_before, 8 * per_day)
    days = [fire[:5] for fire in fires]
    expected = [(first + timedelta(days=d)).strftime("%m-%d") for d in range(8)]
    assert sorted(set(days)) == expected
    assert all(days.count(day) == per_day for day in expected)


def test_several_skipped_times_fire_once() -> None:
    fires = local_fires({"crontab": "0,20,40 2 * * *"}, NEW_YORK, "2024-03-10T00:00", 3)
    assert fires == ["03-10 03:00-0400", "03-11 02:00-0400", "03-11 02:20-0400"]


def test_a_skipped_time_and_the_time_after_the_change_fire_once() -> None:
    fires = local_fires({"crontab": "30 2,3 * * *"}, NEW_YORK, "2024-03-10T00:00", 3)
    assert fires == ["03-10 03:00-0400", "03-10 03:30-0400", "03-11 02:30-0400"]


# -- APScheduler's own fields follow the same rule -----------------------------------------------


def test_field_form_fixed_job_in_the_gap() -> None:
    fires = local_fires({"hour": 2, "minute": 30}, NEW_YORK, "2024-03-09T12:00", 2)
    assert fires == ["03-10 03:00-0400", "03-11 02:30-0400"]


def test_field_form_fixed_job_in_the_repeat() -> None:
    # Unspecified minute and second default to 0 below the given hour: a fixed job.
    fires = local_fires({"hour": 1}, NEW_YORK, "2024-11-02T12:00", 2)
    assert fires == ["11-03 01:00-0400", "11-04 01:00-0500"]


def test_field_form_hourly_job_fires_in_both_passes() -> None:
    # Only minute given: the hour above it defaults to "*", so it follows real time.
    fires = local_fires({"minute": 30}, NEW_YORK, "2024-11-03T00:45", 3)
    assert fires == ["11-03 01:30-0400", "11-03 01:30-0500", "11-03 02:30-0500"]


def test_field_form_seconds_follow_real_time() -> None:
    fires = local_fires({"second": "*/30"}, NEW_YORK, "2024-03-10T01:59:00", 4)
    assert fires == ["03-10 01:59-0500", "03-10 03:00-0400", "03-10 03:00-0400", "03-10 03:01-0400"]


# -- why ZonedCronTrigger exists ----------------------------------------------------------------


def test_apscheduler_311_cron_trigger_repeats_a_fixed_time_in_autumn() -> None:
    tz = ZoneInfo(NEW_YORK)
    raw = CronTrigger(hour=1, minute=45, timezone=tz)
    fires, previous, now = [], None, datetime(2024, 11, 2, 12, tzinfo=tz)
    for _ in range(3):
        previous = now = raw.get_next_fire_time(previous, now)
        fires.append(now.astimezone(tz).strftime("%m-%d %H:%M%z"))
    # The raw trigger runs the 01:45 task twice on 3 November; ours once.
    assert fires == ["11-03 01:45-0400", "11-03 01:45-0500", "11-04 01:45-0500"]
    ours = local_fires({"crontab": "45 1 * * *"}, NEW_YORK, "2024-11-02T12:00", 2)
    assert ours == ["11-03 01:45-0400", "11-04 01:45-0500"]


# -- starting anywhere near a change ------------------------------------------------------------

ZONES_AND_CHANGES = [
    (NEW_YORK, datetime(2024, 3, 10, 7, tzinfo=UTC)),
    (NEW_YORK, datetime(2024, 11, 3, 6, tzinfo=UTC)),
    (BERLIN, datetime(2024, 3, 31, 1, tzinfo=UTC)),
    (BERLIN, datetime(2024, 10, 27, 1, tzinfo=UTC)),
    (LORD_HOWE, datetime(2024, 4, 6, 15, tzinfo=UTC)),
    (LORD_HOWE, datetime(2024, 10, 5, 15, 30, tzinfo=UTC)),
]
RULE_EXPRESSIONS = [
    "30 2 * * *",
    "45 1 * * *",
    "0,30 2,3 * * *",
    "0 1-3 * * *",
    "*/20 * * * *",
    "0 * * * *",
    "15 * * * *",
    "* 2 * * *",
]


def rule_oracle(crontab: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    """The contract's rule by brute force, minute by minute."""
    tz = ZoneInfo(zone)
    spec = parse_crontab(crontab)

    def matches(wall: datetime) -> bool:
        return spec.next_match(wall) == wall

    if spec.wall_clock:
        # Every matching local time, read by the one localisation rule (gap -> the change,
        # repeat -> first occurrence), duplicates removed.
        wall = start.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3)
        found = set()
        while wall <= end.astimezone(tz).replace(tzinfo=None) + timedelta(hours=3):
            if matches(wall) and start <= (instant := wall_to_instant(wall, tz)) <= end:
                found.add(instant)
            wall += timedelta(minutes=1)
        return sorted(found)
    # Every real minute whose local clock reading matches.
    instants, instant = [], start
    while instant <= end:
        if matches(instant.astimezone(tz).replace(tzinfo=None)):
            instants.append(instant)
        instant += timedelta(minutes=1)
    return instants


@pytest.mark.parametrize("crontab", RULE_EXPRESSIONS)
@pytest.mark.parametrize(("zone", "change"), ZONES_AND_CHANGES)
def test_every_start_minute_around_a_change_agrees_with_the_rule(
    zone: str, change: datetime, crontab: str
) -> None:
    trigger = build_trigger("cron", {"crontab": crontab, "timezone": zone})
    expected = rule_oracle(crontab, zone, change - timedelta(hours=4), change + timedelta(days=2))
    now = change - timedelta(hours=3)
    while now < change + timedelta(hours=3):
        index = bisect.bisect_left(expected, now)
        assert trigger.get_next_fire_time(None, now) == expected[index], now
        now += timedelta(minutes=5)
    listed = next_fire_times(trigger, count=len(expected), after=expected[0] - timedelta(seconds=1))
    assert listed == expected


def test_previous_fire_time_continues_after_it() -> None:
    trigger = build_trigger("cron", {"crontab": "0 * * * *", "timezone": NEW_YORK})
    first = datetime(2024, 11, 3, 5, tzinfo=UTC)  # 01:00 EDT
    second = trigger.get_next_fire_time(first, first)
    assert second == datetime(2024, 11, 3, 6, tzinfo=UTC)  # 01:00 EST, an hour later
    # A "now" before the previous fire wins, as in APScheduler's CronTrigger.
    assert trigger.get_next_fire_time(second, first) == first


def test_start_date_is_a_real_instant() -> None:
    # 01:30 on 3 November is ambiguous: the first occurrence (EDT). The next hour mark is
    # then 01:00 EST, because 02:00 EDT never comes.
    config = {"crontab": "0 * * * *", "start_date": "2024-11-03T01:30"}
    fires = local_fires(config, NEW_YORK, "2024-11-02T00:00", 2)
    assert fires == ["11-03 01:00-0500", "11-03 02:00-0500"]


def test_end_date_stops_the_schedule() -> None:
    config = {"crontab": "0 * * * *", "end_date": "2024-03-10T03:00"}
    fires = local_fires(config, NEW_YORK, "2024-03-10T00:30", 5)
    assert fires == ["03-10 01:00-0500", "03-10 03:00-0400"]


def test_jitter_delays_a_fire_but_not_the_preview() -> None:
    trigger = build_trigger("cron", {"crontab": "30 2 * * *", "timezone": NEW_YORK, "jitter": 60})
    now = datetime(2024, 3, 10, 5, tzinfo=UTC)
    nominal = datetime(2024, 3, 10, 7, tzinfo=UTC)  # 03:00 EDT
    for _ in range(20):
        fire = trigger.get_next_fire_time(None, now)
        assert nominal <= fire <= nominal + timedelta(seconds=60)
    assert next_fire_times(trigger, count=1, after=now) == [nominal]


# -- intervals count real time ------------------------------------------------------------------


@pytest.mark.parametrize(
    "start", ["2024-03-09T22:00", "2024-11-02T22:00"], ids=["spring", "autumn"]
)
def test_hourly_interval_is_3600_seconds_across_the_change(start: str) -> None:
    trigger = build_trigger("interval", {"hours": 1, "start_date": start, "timezone": NEW_YORK})
    after = datetime.fromisoformat(start).replace(tzinfo=ZoneInfo(NEW_YORK)) - timedelta(seconds=1)
    times = next_fire_times(trigger, count=10, after=after)
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(times)] == [3600] * 9
    local = [t.astimezone(ZoneInfo(NEW_YORK)).strftime("%H:%M") for t in times]
    if start.startswith("2024-03"):
        assert local[:6] == ["22:00", "23:00", "00:00", "01:00", "03:00", "04:00"]
    else:
        assert local[:6] == ["22:00", "23:00", "00:00", "01:00", "01:00", "02:00"]


def test_daily_interval_is_24_real_hours() -> None:
    trigger = build_trigger(
        "interval", {"days": 1, "start_date": "2024-03-09T12:00", "timezone": NEW_YORK}
    )
    times = next_fire_times(trigger, count=2, after=datetime(2024, 3, 9, tzinfo=UTC))
    local = [t.astimezone(ZoneInfo(NEW_YORK)).strftime("%m-%d %H:%M") for t in times]
    assert local == ["03-09 12:00", "03-10 13:00"]
