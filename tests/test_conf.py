"""TASKS_SCHED is read lazily, defaults filled in, and re-read when the setting changes."""

from __future__ import annotations

from pathlib import Path

from django.test import SimpleTestCase, override_settings

from django_tasks_sched.conf import DEFAULTS, Malformed, get_settings


class SettingsTests(SimpleTestCase):
    def test_defaults(self) -> None:
        conf = get_settings()
        assert conf.ALLOWED_MODULES is None
        assert conf.TASKS == ()
        assert conf.PYPROJECT is None

    def test_every_default_is_a_field(self) -> None:
        assert set(DEFAULTS) == set(get_settings().__dataclass_fields__)

    def test_override_is_seen_and_undone(self) -> None:
        with override_settings(
            TASKS_SCHED={"ALLOWED_MODULES": ["jobs", "reports"], "PYPROJECT": "/srv/app/pp.toml"}
        ):
            conf = get_settings()
            assert conf.ALLOWED_MODULES == ("jobs", "reports")
            assert Path("/srv/app/pp.toml") == conf.PYPROJECT
        assert get_settings().ALLOWED_MODULES is None

    @override_settings(TASKS_SCHED=["not", "a", "dict"])
    def test_malformed_setting_falls_back_to_defaults(self) -> None:
        # The system checks report it (django_tasks_sched.E001); nothing else may crash on it.
        conf = get_settings()
        assert DEFAULTS["THREADS"] == conf.THREADS
        # Except the callable policy, which fails closed rather than widen to the default.
        closed = Malformed("TASKS_SCHED", wrong_type="list")
        assert closed == conf.ALLOWED_MODULES

    def test_cached_between_reads(self) -> None:
        assert get_settings() is get_settings()

    @override_settings(
        TASKS_SCHED={"ALLOWED_MODULES": "tests", "THREADS": "ten", "POLL_INTERVAL": 0.5}
    )
    def test_malformed_values_fall_back_per_key(self) -> None:
        # A bare string must not become the prefixes ('t', 'e', 's', ...), nor fall back to
        # the wider default: it allows nothing. The checks report it.
        conf = get_settings()
        closed = Malformed("TASKS_SCHED['ALLOWED_MODULES']", wrong_type="str")
        assert closed == conf.ALLOWED_MODULES
        assert DEFAULTS["THREADS"] == conf.THREADS
        assert conf.POLL_INTERVAL == 0.5
