"""Crontab strings mean what they mean to cron: checked against croniter as an oracle, in UTC."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from django_tasks_sched.triggers import build_trigger, next_fire_times
from django_tasks_sched.triggers.crontab import CrontabError, parse_crontab

UTC = timezone.utc
STARTS = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2023, 2, 27, 13, 7, 30, tzinfo=UTC)]

ORACLE_EXPRESSIONS = [
    "* * * * *",
    "*/15 * * * *",
    "0 * * * *",
    "5,35 * * * *",
    "0-5 12 * * *",
    "10/20 * * * *",
    "0 9 * * *",
    "30 2 * * *",
    "23 0-20/2 * * *",
    "0 22-2 * * *",
    "0 0,12 1 */2 *",
    "59 23 31 12 *",
    # day-of-week: 0 and 7 are Sunday, names in any case, ranges, steps, wrapping ranges
    "0 9 * * mon-fri",
    "0 9 * * 1-5",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 0 * * sun",
    "0 0 * * SUN",
    "0 0 * * Sun-Tue",
    "0 0 * * 0-2",
    "0 0 * * 5-7",
    "0 0 * * 0-7",
    "0 0 * * fri-sun",
    "0 0 * * sat-sun",
    "0 0 * * 1-5/2",
    "0 0 * * */2",
    "5 4 * * sun",
    # day of month and month
    "0 12 1 * *",
    "0 0 1,15 * *",
    "0 4 8-14 * *",
    "0 0 31 * *",
    "0 0 29 2 *",
    "0 0 1 jan,jul *",
    "0 0 1 JAN-MAR *",
    "0 0 * */3 *",
    "0 0 1 1-12/4 *",
    "0 0 1 nov-feb *",
    "*/7 */5 */3 */2 *",
    # both day fields restricted: either one fires (cron's OR rule)
    "0 0 1 * 0",
    "0 0 13 * 5",
    "30 4 1,15 * 5",
    "0 0 1-7 * mon",
    "0 0 1-31 * mon",
    # a day field starting with "*" is not restricted: both must match
    "0 0 */2 * mon",
    "0 0 1 * */2",
    # aliases
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
    "@Daily",
]


def croniter_fires(expression: str, start: datetime, count: int) -> list[datetime]:
    # implement_cron_bug: a day field that starts with "*" is AND-ed, as in cron and the contract.
    it = croniter(expression, start, implement_cron_bug=True)
    return [it.get_next(datetime) for _ in range(count)]


def our_fires(expression: str, start: datetime, count: int) -> list[datetime]:
    trigger = build_trigger("cron", {"crontab": expression, "timezone": "UTC"})
    return next_fire_times(trigger, count=count, after=start)


@pytest.mark.parametrize("start", STARTS, ids=["new-year", "before-leap-day"])
@pytest.mark.parametrize("expression", ORACLE_EXPRESSIONS)
def test_next_50_fires_agree_with_croniter(expression: str, start: datetime) -> None:
    assert our_fires(expression, start, 50) == croniter_fires(expression, start, 50)


def _item(low: int, high: int, names: tuple[str, ...], names_start: int) -> st.SearchStrategy[str]:
    def token(value: int) -> st.SearchStrategy[str]:
        options = [st.just(str(value))]
        if names and names_start <= value < names_start + len(names):
            options.append(st.just(names[value - names_start]))
        return st.one_of(options)

    single = st.integers(low, high).flatmap(token)
    # Equal ranges ("5-5") are left out: croniter reads them as the whole field, cron as 5.
    ranged = st.tuples(st.integers(low, high - 1), st.integers(1, high - low)).flatmap(
        lambda pair: st.tuples(token(pair[0]), token(min(pair[0] + pair[1], high))).map("-".join)
    )
    step = st.integers(1, max(1, (high - low) // 2))
    return st.one_of(
        single,
        ranged,
        st.tuples(ranged, step).map(lambda pair: f"{pair[0]}/{pair[1]}"),
    )


def _field(
    low: int, high: int, names: tuple[str, ...] = (), start: int = 0
) -> st.SearchStrategy[str]:
    # "*" only alone: croniter and cron disagree on whether "1,*" restricts a day field.
    star = st.one_of(
        st.just("*"), st.integers(1, max(1, (high - low) // 2)).map(lambda n: f"*/{n}")
    )
    listed = st.lists(_item(low, high, names, start), min_size=1, max_size=3).map(",".join)
    return st.one_of(star, listed)


MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
CRONTABS = st.tuples(
    _field(0, 59),
    _field(0, 23),
    _field(1, 28),  # days every month has: croniter and cron agree on the rest above
    _field(1, 12, MONTHS, 1),
    _field(0, 6, WEEKDAYS, 0),
).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(expression=CRONTABS)
def test_random_crontabs_agree_with_croniter(expression: str) -> None:
    start = datetime(2024, 2, 20, 5, 3, tzinfo=UTC)
    assert our_fires(expression, start, 20) == croniter_fires(expression, start, 20)


# -- parsing details ---------------------------------------------------------------------------


def test_day_of_week_seven_and_zero_are_both_sunday() -> None:
    assert parse_crontab("0 0 * * 7").weekdays == parse_crontab("0 0 * * 0").weekdays == 1


def test_equal_range_is_one_value_as_in_cron() -> None:
    assert parse_crontab("5-5 * * * *").minutes == 1 << 5


def test_day_fields_are_or_ed_only_when_both_are_restricted() -> None:
    assert parse_crontab("0 0 1 * mon").day_or
    assert not parse_crontab("0 0 */2 * mon").day_or
    assert not parse_crontab("0 0 1 * *").day_or
    assert not parse_crontab("0 0 * * mon").day_or


@pytest.mark.parametrize(
    ("expression", "wall_clock"),
    [
        ("30 2 * * *", True),
        ("0 1-3 * * *", True),
        ("@daily", True),
        ("0 * * * *", False),
        ("@hourly", False),
        ("*/20 * * * *", False),
        ("0 */2 * * *", False),
        ("*/5 2 * * *", False),
    ],
)
def test_wall_clock_means_minute_and_hour_both_fixed(expression: str, wall_clock: bool) -> None:
    assert parse_crontab(expression).wall_clock is wall_clock


def test_whitespace_is_normalised() -> None:
    assert parse_crontab("  0   9 * *\tmon-fri ").expression == "0 9 * * mon-fri"


def test_search_spans_years_for_a_rare_day() -> None:
    # 2100 is not a leap year: the next 29 February after 2096 is in 2104.
    crontab = parse_crontab("0 0 29 2 *")
    assert crontab.next_match(datetime(2096, 3, 1)) == datetime(2104, 2, 29)


def test_next_match_rounds_up_to_the_minute() -> None:
    crontab = parse_crontab("* * * * *")
    assert crontab.next_match(datetime(2024, 1, 1, 0, 0, 1)) == datetime(2024, 1, 1, 0, 1)
    assert crontab.next_match(datetime(2024, 1, 1, 0, 0)) == datetime(2024, 1, 1, 0, 0)


BAD_CRONTABS = [
    ("", "empty"),
    ("0 9 * *", "got 4"),
    ("0 0 9 * * *", "for seconds use the separate cron keys"),
    ("61 * * * *", "minute value 61 is out of range 0-59"),
    ("0 24 * * *", "hour value 24 is out of range 0-23"),
    ("0 0 0 * *", "day-of-month value 0 is out of range 1-31"),
    ("0 0 * 13 *", "month value 13 is out of range 1-12"),
    ("0 0 * * 8", "day-of-week value 8 is out of range 0-7"),
    ("0 0 * * funday", "unknown day-of-week name 'funday'"),
    ("0 0 * foo *", "unknown month name 'foo'"),
    ("0 0 * * mon-foo", "unknown day-of-week name 'foo'"),
    ("*/0 * * * *", "step 0"),
    ("a * * * *", "'a' is not a number in the minute field"),
    ("1-2-3 * * * *", "cannot read '1-2-3'"),
    ("0 0 L * *", "the separate cron keys offer day: 'last'"),
    ("0 0 * * 1#2", "L, W, # and ?"),
    ("0 0 ? * *", "L, W, # and ?"),
    ("@fortnightly", "unknown alias '@fortnightly'"),
    ("0 0 30 2 *", "never fires"),
    ("0 0 31 4,6 *", "never fires"),
]


@pytest.mark.parametrize(("expression", "fragment"), BAD_CRONTABS)
def test_bad_crontab_says_what_and_where(expression: str, fragment: str) -> None:
    with pytest.raises(CrontabError) as info:
        parse_crontab(expression)
    assert fragment in str(info.value)


def test_impossible_date_is_fine_when_the_weekday_can_fire() -> None:
    # cron's OR rule: 30 February never comes, Mondays in February do.
    fires = our_fires("0 0 30 2 mon", datetime(2024, 1, 1, tzinfo=UTC), 2)
    assert fires == [datetime(2024, 2, 5, tzinfo=UTC), datetime(2024, 2, 12, tzinfo=UTC)]
