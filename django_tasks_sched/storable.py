"""What a run's outcome may hold: values every database stores, made so when they are not.

A run always reaches a final status, whatever its function returns, raises or logs: what no
database takes as it is (NaN, NUL characters, objects that are not JSON) is stored as text.
"""

from __future__ import annotations

import json
from typing import Any

from django_tasks_sched import bounds

#: The largest return value stored as JSON (encoded); a larger one is stored as its
#: (truncated) ``repr``. Larger than a task's own arguments may be: results are often lists.
MAX_RESULT_BYTES = 1024 * 1024


def to_json_value(value: Any) -> Any:
    """The value itself if every database can store it as JSON, else its ``repr`` as text.

    Not storable as it is: what JSON cannot encode, NaN and Infinity, NUL characters (which
    PostgreSQL refuses), integers past 64 bits, nesting past ``bounds.MAX_JSON_DEPTH`` levels
    (MariaDB refuses deep JSON) and more than :data:`MAX_RESULT_BYTES`.
    """
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        size = len(text.encode())
        bounds.check_json(json.loads(text), "return value", max_bytes=MAX_RESULT_BYTES, size=size)
    except Exception:
        # Whatever encoding raised (a container changed meanwhile, a mapping whose items()
        # raises ...): the run must still get an outcome, so its text stands in.
        return storable_text(_safe_repr(value), limit=MAX_RESULT_BYTES)
    return value


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:
        return f"<{type(value).__name__} whose repr() raised {type(exc).__name__}>"


def storable_text(text: str, *, limit: int | None = None) -> str:
    """``text`` as every database stores it: NUL characters written as ``\\x00``, bounded."""
    text = text.replace("\x00", "\\x00")
    if limit is not None and len(text) > limit:
        text = text[: limit - 15] + "... [truncated]"
    return text


def describe_exception(exc: BaseException) -> str:
    """``Type: message``, even for an exception whose ``str()`` raises."""
    try:
        message = str(exc)
    except Exception:
        message = "<its message could not be read>"
    return f"{type(exc).__name__}: {message}"
