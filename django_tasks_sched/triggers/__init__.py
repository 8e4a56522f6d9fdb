"""STUB — to be implemented: trigger_config -> APScheduler 3 trigger, DST rule, words."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def build_trigger(trigger: str, config: Mapping[str, Any]) -> Any:
    raise NotImplementedError


def describe_schedule(trigger: str, config: Mapping[str, Any]) -> str:
    raise NotImplementedError


def next_fire_times(trigger: Any, *, count: int, after: datetime) -> list[datetime]:
    raise NotImplementedError
