"""``describe_schedule``: the schedule in words, faithful to how it fires, and never an error."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import translation
from hypothesis import given, settings
from hypothesis import strategies as st

from django_tasks_sched.triggers import describe_schedule
from django_tasks_sched.triggers.describe import _descriptor_locale

CASES = [
    # interval: the zone only matters (and shows) when there are dates to read
    ("interval", {"minutes": 15}, "Every 15 minutes"),
    ("interval", {"hours": 1}, "Every hour"),
    ("interval", {"days": 1, "hours": 0}, "Every day"),
    ("interval", {"weeks": 2}, "Every 2 weeks"),
    ("interval", {"hours": 2, "minutes": 30}, "Every 2 hours and 30 minutes"),
    ("interval", {"days": 1, "hours": 1, "seconds": 1}, "Every 1 day, 1 hour and 1 second"),
    ("interval", {"seconds": 1.5}, "Every 1.5 seconds"),
    (
        "interval",
        {"minutes": 15, "start_date": "2026-05-01T09:00", "timezone": "Europe/Berlin"},
        "Every 15 minutes, from 2026-05-01 09:00 (Europe/Berlin)",
    ),
    (
        "interval",
        {"hours": 1, "end_date": "2026-05-01T07:00:30Z", "timezone": "Europe/Berlin"},
        "Every hour, until 2026-05-01 09:00:30 (Europe/Berlin)",
    ),
    (
        "interval",
        {"minutes": 5, "jitter": 30},
        "Every 5 minutes; each fire up to 30 seconds late (jitter)",
    ),
    # date
    ("date", {"run_date": "2026-05-01T09:00"}, "Once, at 2026-05-01 09:00 (UTC)"),
    (
        "date",
        {"run_date": "2026-05-01T09:00Z", "timezone": "America/New_York"},
        "Once, at 2026-05-01 05:00 (America/New_York)",
    ),
    # crontab strings
    ("cron", {"crontab": "*/15 * * * *"}, "Every 15 minutes (UTC)"),
    (
        "cron",
        {"crontab": "0 9 * * mon-fri", "timezone": "Europe/Berlin"},
        "At 09:00, Monday through Friday (Europe/Berlin)",
    ),
    ("cron", {"crontab": "0 0 * * 7"}, "At 00:00, only on Sunday (UTC)"),
    ("cron", {"crontab": "0 0 * * 5-7"}, "At 00:00, Friday through Sunday (UTC)"),
    ("cron", {"crontab": "0 0 * * sat-sun"}, "At 00:00, only on Saturday and Sunday (UTC)"),
    ("cron", {"crontab": "0 0 * * sat-mon"}, "At 00:00, Saturday through Monday (UTC)"),
    ("cron", {"crontab": "@hourly"}, "Every hour (UTC)"),
    ("cron", {"crontab": "@weekly"}, "At 00:00, only on Sunday (UTC)"),
    ("cron", {"crontab": "0 0 1 * sun"}, "At 00:00, on day 1 of the month, or on Sunday (UTC)"),
    # either side of an OR covering every day means every day
    ("cron", {"crontab": "0 0 1 * 0-7"}, "At 00:00 (UTC)"),
    # a day field starting with "*" means AND
    (
        "cron",
        {"crontab": "0 0 */10 * mon"},
        "At 00:00, only on Monday, if the day of the month is also 1, 11, 21, 31 (UTC)",
    ),
    (
        "cron",
        {"crontab": "30 2 * * *", "timezone": "America/New_York", "jitter": 60},
        "At 02:30 (America/New_York); each fire up to 60 seconds late (jitter)",
    ),
    (
        "cron",
        {"crontab": "0 9 * * *", "start_date": "2026-01-01", "end_date": "2026-12-31T18:00"},
        "At 09:00, from 2026-01-01 00:00, until 2026-12-31 18:00 (UTC)",
    ),
    # APScheduler fields, through an equivalent crontab
    ("cron", {"hour": 9}, "At 09:00 (UTC)"),
    ("cron", {"minute": 30}, "At 30 minutes past the hour (UTC)"),
    ("cron", {"second": "*/10"}, "Every 10 seconds (UTC)"),
    ("cron", {"hour": 9, "minute": 30, "second": 15}, "At 09:30:15 (UTC)"),
    # day_of_week 0 is Monday in APScheduler, Sunday in cron
    ("cron", {"day_of_week": 0, "hour": 9}, "At 09:00, only on Monday (UTC)"),
    ("cron", {"day_of_week": "5-6", "hour": 9}, "At 09:00, only on Saturday and Sunday (UTC)"),
    ("cron", {"day_of_week": "mon-fri", "hour": 9}, "At 09:00, Monday through Friday (UTC)"),
    ("cron", {"day": "last", "hour": 9}, "At 09:00, on the last day of the month (UTC)"),
    ("cron", {"day": "1st mon", "hour": 9}, "At 09:00, on the first Monday of the month (UTC)"),
    ("cron", {"day": "last fri"}, "At 00:00, on the last Friday of the month (UTC)"),
    (
        "cron",
        {"month": "jun-aug", "day": 1, "hour": 12},
        "At 12:00, on day 1 of the month, June through August (UTC)",
    ),
    ("cron", {"year": 2026, "month": 6, "hour": 9}, "At 09:00, only in June, only in 2026 (UTC)"),
    # separate day and day_of_week keys: both must match
    (
        "cron",
        {"day": "1-7", "day_of_week": "sun", "hour": 9},
        "At 09:00, only on Sunday, if the day of the month is also 1-7 (UTC)",
    ),
    # no crontab says this: the fields are listed
    (
        "cron",
        {"week": "1-10", "hour": 9},
        "Cron fields week=1-10, hour=9, minute=0, second=0 (UTC)",
    ),
    ("cron", {"year": "*/2", "hour": 9}, "Cron fields year=*/2, hour=9, minute=0, second=0 (UTC)"),
    (
        "cron",
        {"day": "1st mon,last", "hour": 6},
        "Cron fields day=1st mon,last, hour=6, minute=0, second=0 (UTC)",
    ),
]


@pytest.mark.parametrize(("trigger", "config", "expected"), CASES)
def test_describe(trigger: str, config: dict[str, Any], expected: str) -> None:
    assert describe_schedule(trigger, config) == expected


@pytest.mark.parametrize(
    ("trigger", "config", "expected"),
    [
        ("hourly", {}, "Invalid schedule: unknown trigger 'hourly'; expected one of date, "),
        ("interval", {"secs": 5}, "Invalid schedule: unknown key 'secs' for an interval trigger"),
        ("interval", [], "Invalid schedule: trigger_config must be a JSON object"),
        ("cron", {"crontab": "61 * * * *"}, "Invalid schedule: crontab: minute value 61"),
        ("date", {}, "Invalid schedule: a date trigger needs run_date"),
    ],
)
def test_invalid_config_is_described_not_raised(trigger: str, config: Any, expected: str) -> None:
    assert describe_schedule(trigger, config).startswith(expected)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-100, 100) | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children)
    ),
    max_leaves=6,
)
KEYS = st.sampled_from(
    [
        *("minutes", "hours", "crontab", "hour", "day", "day_of_week", "run_date"),
        *("start_date", "timezone", "jitter", "week", "year", "end_date", "second"),
    ]
)
VALUES = JSON | st.sampled_from(
    ["*/5", "mon-fri", "last", "2026-05-01", "Europe/Berlin", "0 9 * * *"]
)


@settings(max_examples=300, deadline=None)
@given(
    trigger=st.sampled_from(["date", "interval", "cron", "weekly"]),
    config=st.dictionaries(KEYS, VALUES, max_size=4) | JSON,
)
def test_describe_never_raises(trigger: str, config: Any) -> None:
    assert isinstance(describe_schedule(trigger, config), str)


def test_cron_words_follow_the_active_language() -> None:
    with translation.override("de"):
        text = describe_schedule("cron", {"crontab": "0 9 * * *"})
    assert text == "Um 09:00 (UTC)"


@pytest.mark.parametrize(
    ("language", "locale"),
    [
        ("en", "en_US"),
        ("en-us", "en_US"),
        ("de", "de_DE"),
        ("pt-br", "pt_PT"),
        ("xx", "en_US"),
        (None, "en_US"),
    ],
)
def test_cron_descriptor_locale(language: str | None, locale: str) -> None:
    assert _descriptor_locale(language) == locale
