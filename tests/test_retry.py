"""SAQ's retry semantics: which runs are retried, and how long each retry waits."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

import pytest

from django_tasks_sched.retry import retry_delay, should_retry


@dataclass
class Policy:
    max_retries: int = 2
    retry_delay: int = 10
    retry_backoff: bool = False
    retry_backoff_max: int | None = None


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "INTERRUPTED"])
def test_unsuccessful_runs_are_retried_while_retries_are_left(status: str) -> None:
    policy = Policy(max_retries=2)
    assert should_retry(policy, status, attempt=1)
    assert should_retry(policy, status, attempt=2)
    assert not should_retry(policy, status, attempt=3)  # the first run and two retries


@pytest.mark.parametrize("status", ["SUCCESSFUL", "MISSED", "CANCELLED", "RUNNING", "QUEUED"])
def test_other_outcomes_are_not_retried(status: str) -> None:
    assert not should_retry(Policy(max_retries=5), status, attempt=1)


def test_no_retries_by_default() -> None:
    assert not should_retry(Policy(max_retries=0), "FAILED", attempt=1)


def test_without_backoff_every_retry_waits_the_delay() -> None:
    policy = Policy(retry_delay=7)
    assert [retry_delay(policy, n) for n in (1, 2, 5)] == [timedelta(seconds=7)] * 3


def test_backoff_doubles_the_ceiling_with_full_jitter() -> None:
    policy = Policy(retry_delay=10, retry_backoff=True)
    rng = random.Random(42)
    for retry, ceiling in [(1, 10), (2, 20), (3, 40), (4, 80)]:
        delays = [retry_delay(policy, retry, rng).total_seconds() for _ in range(2000)]
        assert all(0 <= d <= ceiling for d in delays)
        # Full jitter: spread over the whole range, not bunched at the ceiling.
        assert min(delays) < ceiling * 0.05
        assert max(delays) > ceiling * 0.95
        assert ceiling * 0.45 < sum(delays) / len(delays) < ceiling * 0.55


def test_backoff_is_capped() -> None:
    policy = Policy(retry_delay=10, retry_backoff=True, retry_backoff_max=25)
    rng = random.Random(1)
    delays = [retry_delay(policy, 10, rng).total_seconds() for _ in range(500)]
    assert max(delays) <= 25
    assert max(delays) > 24


def test_huge_retry_numbers_stay_finite() -> None:
    policy = Policy(retry_delay=1, retry_backoff=True, retry_backoff_max=60)
    assert retry_delay(policy, 10_000) <= timedelta(seconds=60)


def test_retries_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_delay(Policy(), 0)


def test_a_backoff_without_a_cap_stays_within_ten_years() -> None:
    from django_tasks_sched.bounds import MAX_DURATION

    policy = Policy(
        max_retries=1_000_000, retry_delay=3600, retry_backoff=True, retry_backoff_max=None
    )
    delay = retry_delay(policy, 1_000_000, random.Random(1))
    assert timedelta(0) <= delay <= timedelta(seconds=MAX_DURATION)
