"""Exists, but imports a dependency that does not."""

import dts_no_such_dependency  # type: ignore[import-not-found]  # noqa: F401


def job() -> None:
    """Never reachable."""
