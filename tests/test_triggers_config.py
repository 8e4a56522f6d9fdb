"""``build_trigger``: what each trigger_config builds, and every way one can be wrong."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.triggers import (
    TRIGGER_KEYS,
    ZonedCronTrigger,
    build_trigger,
    next_fire_times,
)
from django_tasks_sched.triggers.dates import parse_iso, wall_to_instant
from django_tasks_sched.triggers.fields import FieldWallClock

UTC = timezone.utc
AFTER = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)  # a Tuesday


def test_trigger_keys_match_the_contract() -> None:
    assert TRIGGER_KEYS == {
        "date": ("run_date", "timezone"),
        "interval": (
            "weeks",
            "days",
            "hours",
            "minutes",
            "seconds",
            "start_date",
            "end_date",
            "timezone",
            "jitter",
        ),
        "cron": (
            "year",
            "month",
            "day",
            "week",
            "day_of_week",
            "hour",
            "minute",
            "second",
            "crontab",
            "start_date",
            "end_date",
            "timezone",
            "jitter",
        ),
    }


# -- what gets built ----------------------------------------------------------------------------


def test_date_trigger() -> None:
    trigger = build_trigger("date", {"run_date": "2030-05-01T09:00", "timezone": "Europe/Berlin"})
    assert isinstance(trigger, DateTrigger)
    assert next_fire_times(trigger, count=3, after=AFTER) == [datetime(2030, 5, 1, 7, tzinfo=UTC)]


def test_interval_trigger() -> None:
    config = {"minutes": 15, "start_date": "2030-01-01T08:00Z", "end_date": "2030-01-01T09:00Z"}
    trigger = build_trigger("interval", config)
    assert isinstance(trigger, IntervalTrigger)
    assert next_fire_times(trigger, count=10, after=AFTER) == [
        datetime(2030, 1, 1, 8, m, tzinfo=UTC) for m in (15, 30, 45)
    ] + [datetime(2030, 1, 1, 9, tzinfo=UTC)]


def test_interval_units_add_up() -> None:
    trigger = build_trigger(
        "interval",
        {
            "weeks": 1,
            "days": 1,
            "hours": 1,
            "minutes": 1,
            "seconds": 1.5,
            "start_date": "2030-01-01",
        },
    )
    times = next_fire_times(trigger, count=2, after=AFTER)
    assert times[1] - times[0] == timedelta(weeks=1, days=1, hours=1, minutes=1, seconds=1.5)


def test_interval_default_start_is_one_interval_from_now() -> None:
    before = datetime.now(UTC)
    trigger = build_trigger("interval", {"hours": 2})
    first = next_fire_times(trigger, count=1, after=before)[0]
    assert before + timedelta(hours=2) <= first <= datetime.now(UTC) + timedelta(hours=2)


def test_cron_trigger_from_fields_and_from_crontab() -> None:
    fields = build_trigger("cron", {"day_of_week": "mon-fri", "hour": 9, "timezone": "UTC"})
    crontab = build_trigger("cron", {"crontab": "0 9 * * 1-5", "timezone": "UTC"})
    assert isinstance(fields, ZonedCronTrigger)
    assert isinstance(crontab, ZonedCronTrigger)
    expected = [datetime(2030, 1, d, 9, tzinfo=UTC) for d in (1, 2, 3, 4, 7)]
    assert next_fire_times(fields, count=5, after=AFTER) == expected
    assert next_fire_times(crontab, count=5, after=AFTER) == expected


def test_apscheduler_day_of_week_counts_from_monday() -> None:
    # APScheduler's field: 0 is Monday. In a crontab string 0 is Sunday.
    fields = build_trigger("cron", {"day_of_week": 0, "timezone": "UTC"})
    crontab = build_trigger("cron", {"crontab": "0 0 * * 0", "timezone": "UTC"})
    assert next_fire_times(fields, count=1, after=AFTER)[0].weekday() == 0
    assert next_fire_times(crontab, count=1, after=AFTER)[0].weekday() == 6


def test_apscheduler_day_and_day_of_week_keys_both_must_match() -> None:
    # Separate keys keep APScheduler's AND; the crontab string has cron's OR.
    fields = build_trigger("cron", {"day": "1-7", "day_of_week": "sun", "timezone": "UTC"})
    crontab = build_trigger("cron", {"crontab": "0 0 1-7 * sun", "timezone": "UTC"})
    assert [t.day for t in next_fire_times(fields, count=2, after=AFTER)] == [6, 3]
    assert [t.day for t in next_fire_times(crontab, count=3, after=AFTER)] == [2, 3, 4]


def test_cron_start_and_end_date() -> None:
    config = {"crontab": "0 12 * * *", "start_date": "2030-01-03", "end_date": "2030-01-04T12:00"}
    trigger = build_trigger("cron", {**config, "timezone": "UTC"})
    assert next_fire_times(trigger, count=5, after=AFTER) == [
        datetime(2030, 1, 3, 12, tzinfo=UTC),
        datetime(2030, 1, 4, 12, tzinfo=UTC),
    ]


def test_null_values_mean_not_set() -> None:
    trigger = build_trigger("interval", {"minutes": 5, "end_date": None, "jitter": None})
    assert trigger.end_date is None
    assert trigger.jitter is None


def test_trigger_str_and_repr() -> None:
    trigger = build_trigger(
        "cron", {"crontab": "0 9 * * mon-fri", "timezone": "Europe/Berlin", "jitter": 30}
    )
    assert str(trigger) == "cron[crontab='0 9 * * mon-fri', timezone='Europe/Berlin']"
    assert repr(trigger) == (
        "<ZonedCronTrigger (crontab='0 9 * * mon-fri', jitter=30, timezone='Europe/Berlin')>"
    )
    fields = build_trigger("cron", {"hour": "9", "minute": 0, "timezone": "UTC"})
    assert str(fields) == "cron[hour='9', minute='0', timezone='UTC']"


# -- time zones and dates -------------------------------------------------------------------------


def test_default_time_zone_is_read_from_settings_at_call_time() -> None:
    config, after = {"crontab": "0 9 * * *"}, datetime(2030, 1, 1, 7, tzinfo=UTC)
    with override_settings(TIME_ZONE="Asia/Tokyo"):
        tokyo = next_fire_times(build_trigger("cron", config), count=1, after=after)
    with override_settings(TIME_ZONE="Europe/Berlin"):
        berlin = next_fire_times(build_trigger("cron", config), count=1, after=after)
    assert tokyo == [datetime(2030, 1, 2, 0, tzinfo=UTC)]
    assert berlin == [datetime(2030, 1, 1, 8, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2030-05-01", datetime(2030, 5, 1, 4, tzinfo=UTC)),  # midnight, New York time
        ("2030-05-01T09:00", datetime(2030, 5, 1, 13, tzinfo=UTC)),
        ("2030-05-01 09:00:30", datetime(2030, 5, 1, 13, 0, 30, tzinfo=UTC)),
        ("2030-05-01T09:00Z", datetime(2030, 5, 1, 9, tzinfo=UTC)),
        ("2030-05-01T09:00+02:00", datetime(2030, 5, 1, 7, tzinfo=UTC)),
        # Skipped in spring: the first valid instant after the gap (03:00 EDT).
        ("2030-03-10T02:30", datetime(2030, 3, 10, 7, tzinfo=UTC)),
        # Repeated in autumn: the first occurrence (EDT).
        ("2030-11-03T01:30", datetime(2030, 11, 3, 5, 30, tzinfo=UTC)),
    ],
)
def test_run_date_is_read_in_the_config_time_zone(value: str, expected: datetime) -> None:
    trigger = build_trigger("date", {"run_date": value, "timezone": "America/New_York"})
    assert trigger.run_date == expected


def test_wall_to_instant_in_a_30_minute_gap() -> None:
    from zoneinfo import ZoneInfo

    lord_howe = ZoneInfo("Australia/Lord_Howe")
    instant = wall_to_instant(datetime(2024, 10, 6, 2, 15), lord_howe)
    assert instant.astimezone(lord_howe).strftime("%H:%M%z") == "02:30+1100"


@pytest.mark.parametrize(
    "value", ["2026-13-01", "2026-02-30T10:00", "tomorrow", "", "2026-05-01T25:00"]
)
def test_parse_iso_rejects_impossible_dates(value: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(value)}$"):
        parse_iso(value)


def test_naive_after_is_read_in_the_default_time_zone() -> None:
    trigger = build_trigger("cron", {"crontab": "0 9 * * *", "timezone": "UTC"})
    with override_settings(TIME_ZONE="Europe/Berlin"):
        # 09:30 in Berlin is 08:30 UTC: the 09:00 UTC fire is still to come.
        times = next_fire_times(trigger, count=1, after=datetime(2030, 1, 1, 9, 30))
    assert times == [datetime(2030, 1, 1, 9, tzinfo=UTC)]


# -- next_fire_times ----------------------------------------------------------------------------


def test_next_fire_times_are_strictly_after() -> None:
    trigger = build_trigger("cron", {"crontab": "0 * * * *", "timezone": "UTC"})
    assert next_fire_times(trigger, count=2, after=AFTER) == [
        datetime(2030, 1, 1, 9, tzinfo=UTC),
        datetime(2030, 1, 1, 10, tzinfo=UTC),
    ]


def test_next_fire_times_of_a_past_date_is_empty() -> None:
    trigger = build_trigger("date", {"run_date": "2029-01-01T00:00Z"})
    assert next_fire_times(trigger, count=5, after=AFTER) == []


def test_next_fire_times_leaves_jitter_out() -> None:
    config = {"minutes": 10, "start_date": "2030-01-01T08:00Z", "jitter": 300}
    trigger = build_trigger("interval", config)
    expected = [datetime(2030, 1, 1, 8, m, tzinfo=UTC) for m in (10, 20, 30)]
    assert next_fire_times(trigger, count=3, after=AFTER) == expected
    assert trigger.jitter == 300  # the caller's trigger keeps its jitter
    fire = trigger.get_next_fire_time(None, AFTER + timedelta(seconds=1))
    assert expected[0] <= fire <= expected[0] + timedelta(seconds=300)


def test_next_fire_times_zero_count() -> None:
    trigger = build_trigger("interval", {"minutes": 1})
    assert next_fire_times(trigger, count=0, after=AFTER) == []


def test_cron_schedule_that_has_ended() -> None:
    trigger = build_trigger("cron", {"year": 2020, "timezone": "UTC"})
    assert next_fire_times(trigger, count=3, after=AFTER) == []


def test_import_needs_no_configured_django() -> None:
    code = "import django_tasks_sched.triggers as t; print(sorted(t.TRIGGER_KEYS))"
    # No DJANGO_SETTINGS_MODULE: settings are only read when a trigger is built.
    root = str(Path(__file__).resolve().parent.parent)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": root},
        cwd=root,
    )
    assert result.stdout.strip() == "['cron', 'date', 'interval']"


# -- every way a config can be wrong --------------------------------------------------------------

BAD = [
    # (trigger, config, field, message fragment)
    ("hourly", {}, "trigger", "unknown trigger 'hourly'; expected one of date, interval, cron"),
    ("", {}, "trigger", "unknown trigger ''"),
    ("interval", [1, 2], "trigger_config", 'must be a JSON object such as {"minutes": 15}'),
    ("cron", "0 9 * * *", "trigger_config", "must be a JSON object"),
    ("date", None, "trigger_config", "must be a JSON object"),
    (
        "interval",
        {"secs": 5},
        "trigger_config",
        "unknown key 'secs' for an interval trigger; expected one of weeks, days, hours, "
        "minutes, seconds, start_date, end_date, timezone, jitter",
    ),
    ("date", {"run_date": "2030-01-01", "jitter": 5}, "trigger_config", "unknown key 'jitter'"),
    ("cron", {"hour": 9, "run_date": "2030-01-01"}, "trigger_config", "for a cron trigger"),
    ("interval", {"minutes": True}, "trigger_config", "minutes: expected a number, got true"),
    ("interval", {"hours": "1"}, "trigger_config", "hours: expected a number, got '1'"),
    ("interval", {"minutes": [5]}, "trigger_config", "expected a number"),
    ("interval", {"minutes": float("nan")}, "trigger_config", "finite number"),
    ("interval", {"minutes": -5}, "trigger_config", "minutes: -5 is negative"),
    (
        "interval",
        {"minutes": 0, "seconds": 0},
        "trigger_config",
        "an interval trigger needs at least one of weeks, days, hours, minutes, seconds "
        "greater than zero",
    ),
    ("interval", {"timezone": "UTC"}, "trigger_config", "needs at least one of"),
    ("interval", {"days": 10**12}, "trigger_config", "the interval is too long"),
    ("interval", {"minutes": 5, "jitter": -1}, "trigger_config", "jitter: -1 is negative"),
    ("interval", {"minutes": 5, "jitter": "5s"}, "trigger_config", "jitter: expected a number"),
    (
        "interval",
        {"minutes": 5, "start_date": "2026-13-01"},
        "trigger_config",
        "start_date: '2026-13-01' is not an ISO 8601 date/time, e.g. 2026-05-01T09:00",
    ),
    ("interval", {"minutes": 5, "end_date": 20260501}, "trigger_config", "end_date: 20260501"),
    (
        "cron",
        {"hour": 9, "start_date": "2026-05-01", "end_date": "2026-04-01"},
        "trigger_config",
        "end_date ('2026-04-01') is before start_date ('2026-05-01')",
    ),
    (
        "interval",
        {"minutes": 5, "timezone": "Europe/Berln"},
        "trigger_config",
        "timezone: unknown time zone 'Europe/Berln'; use an IANA name such as 'Europe/Berlin'",
    ),
    ("interval", {"minutes": 5, "timezone": "../etc/passwd"}, "trigger_config", "unknown time"),
    ("interval", {"minutes": 5, "timezone": 1}, "trigger_config", "timezone: expected an IANA"),
    ("date", {}, "trigger_config", "a date trigger needs run_date"),
    ("date", {"run_date": None}, "trigger_config", "needs run_date"),
    ("date", {"run_date": "soon"}, "trigger_config", "run_date: 'soon' is not an ISO 8601"),
    ("cron", {}, "trigger_config", "a cron trigger needs a crontab string or at least one"),
    ("cron", {"minute": 61}, "trigger_config", "minute: Error validating expression '61'"),
    ("cron", {"hour": "25"}, "trigger_config", "(25) is higher than the maximum value (23)"),
    ("cron", {"day_of_week": "funday"}, "trigger_config", "day_of_week:"),
    ("cron", {"day": "0"}, "trigger_config", "day: Error validating"),
    ("cron", {"month": "13"}, "trigger_config", "use 1-12 or jan-dec"),
    ("cron", {"second": -1}, "trigger_config", "second: -1 is negative"),
    ("cron", {"hour": True}, "trigger_config", "hour: expected a number or a cron expression"),
    ("cron", {"hour": 9.5}, "trigger_config", "hour: expected a number or a cron expression"),
    ("cron", {"minute": "*/0"}, "trigger_config", "minute:"),
    ("cron", {"month": 2, "day": 30}, "trigger_config", "never occurs"),
    ("cron", {"month": 6, "week": 1}, "trigger_config", "never match together"),
    ("cron", {"day": "last sat", "day_of_week": "sun"}, "trigger_config", "never match"),
    ("cron", {"crontab": "0 9 * * *", "hour": 9}, "trigger_config", "cannot be combined with hour"),
    ("cron", {"crontab": 5}, "trigger_config", "crontab: expected a string"),
    ("cron", {"crontab": "0 9 * *"}, "trigger_config", "expected 5 fields"),
    ("cron", {"crontab": "61 * * * *"}, "trigger_config", "minute value 61 is out of range 0-59"),
    ("cron", {"crontab": "0 0 * * funday"}, "trigger_config", "unknown day-of-week name"),
    ("cron", {"crontab": "@fortnightly"}, "trigger_config", "unknown alias '@fortnightly'"),
    ("cron", {"crontab": "@reboot", "jitter": 5}, "trigger_config", "@reboot takes no jitter"),
    ("cron", {"crontab": "0 0 30 2 *"}, "trigger_config", "never fires"),
]


@pytest.mark.parametrize(("trigger", "config", "field", "fragment"), BAD)
def test_bad_config_is_refused_by_field(
    trigger: str, config: Any, field: str, fragment: str
) -> None:
    with pytest.raises(TaskConfigError) as info:
        build_trigger(trigger, config)
    assert info.value.field == field
    assert fragment in info.value.message


def test_unknown_key_message_is_exact() -> None:
    with pytest.raises(TaskConfigError) as info:
        build_trigger("interval", {"secs": 5})
    assert info.value.message == (
        "unknown key 'secs' for an interval trigger; expected one of weeks, days, hours, "
        "minutes, seconds, start_date, end_date, timezone, jitter"
    )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=2) | st.dictionaries(st.text(max_size=5), children)
    ),
    max_leaves=4,
)
CONFIG_VALUES = JSON_VALUES | st.sampled_from(
    [
        *("*/5", "0 0 31 2 *", "9999-12-31T23:59", "0001-01-01", "Pacific/Apia", "last"),
        *("5th fri", "2100", "*/2", "53", "feb", "0 0 * * 7", "mon-fri", "2026-03-29T02:30"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    trigger=st.sampled_from(["date", "interval", "cron"]),
    config=st.dictionaries(
        st.sampled_from([k for keys in TRIGGER_KEYS.values() for k in keys]),
        CONFIG_VALUES,
        max_size=4,
    ),
)
def test_only_task_config_errors_escape(trigger: str, config: dict[str, Any]) -> None:
    # Task.clean() catches TaskConfigError only: anything else would be a server error.
    try:
        built = build_trigger(trigger, config)
    except TaskConfigError:
        return
    next_fire_times(built, count=2, after=AFTER)


def test_field_schedules_share_their_apscheduler_trigger() -> None:
    first = build_trigger("cron", {"hour": "9", "minute": "*/5", "timezone": "UTC"})
    second = build_trigger("cron", {"minute": "*/5", "hour": 9, "timezone": "Europe/Paris"})
    assert first.walls.search is second.walls.search


def test_a_shared_schedule_is_judged_alike_each_time_it_is_built() -> None:
    # The first search is kept with the shared trigger: a second build reads its verdict.
    held = FieldWallClock({"year": "2031-2040/3", "month": "2", "day": "29"})
    assert held.first_match() == datetime(2040, 2, 29, tzinfo=UTC)  # 2031, 2034, 2037, 2040
    assert held.search.first == datetime(2040, 2, 29, tzinfo=UTC)  # kept with the search
    for _ in range(2):
        trigger = build_trigger("cron", {"year": "2031-2040/3", "month": 2, "day": 29})
        assert trigger.walls.search is held.search
    # The search starts at the earliest year allowed, past its 150-year limit from 2000.
    late = FieldWallClock({"year": "2300-2310", "month": "2", "day": "29"})
    assert late.first_match() == datetime(2304, 2, 29, tzinfo=UTC)
    dead = FieldWallClock({"year": "2031", "month": "2", "day": "29"})
    assert dead.first_match() is None
    for _ in range(2):
        with pytest.raises(TaskConfigError, match="never match together"):
            build_trigger("cron", {"year": 2031, "month": 2, "day": 29})


def test_fields_that_never_meet_end_quickly_even_unvalidated() -> None:
    # Rows can reach the table without validation; APScheduler alone would search to 9999.
    trigger = ZonedCronTrigger(FieldWallClock({"week": "53", "month": "2"}), UTC)
    started = time.perf_counter()
    assert trigger.get_next_fire_time(None, AFTER) is None
    assert time.perf_counter() - started < 0.5


def test_a_schedule_ends_where_the_calendar_does() -> None:
    # Accepted (a 100-year interval from 2999), it reaches the year 9999 on its 71st fire.
    trigger = build_trigger("interval", {"days": 36_500, "start_date": "2999-01-01T00:00:00"})
    times = next_fire_times(trigger, count=100, after=AFTER)
    assert len(times) == 71
    assert times[-1].year > 9900
