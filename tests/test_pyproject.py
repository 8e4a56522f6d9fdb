"""``[tool.scheduled]`` in pyproject.toml: hashed times, the tables, and clear errors."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
from django.test import override_settings

from django_tasks_sched.pyproject import (
    assigned_config,
    pyproject_declarations,
    pyproject_path,
    slot,
    table_name,
)
from django_tasks_sched.triggers import build_trigger, describe_schedule


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_slot_is_the_sha256_of_the_id_modulo_the_size() -> None:
    digest = hashlib.sha256(b"clean-files").digest()
    assert slot("clean-files", 1440) == int.from_bytes(digest, "big") % 1440


def test_slots_spread_evenly() -> None:
    counts = Counter(slot(f"job-{i}", 60) for i in range(6000))
    assert len(counts) == 60
    # 100 expected per slot; a biased mapping would leave some far off.
    assert min(counts.values()) > 60
    assert max(counts.values()) < 140


@pytest.mark.parametrize(
    ("every", "keys"),
    [
        ("minute", {"second", "timezone"}),
        ("hour", {"minute", "timezone"}),
        ("day", {"hour", "minute", "timezone"}),
        ("week", {"day_of_week", "hour", "minute", "timezone"}),
        ("month", {"day", "hour", "minute", "timezone"}),
    ],
)
def test_each_cadence_becomes_a_valid_utc_cron_config(every: str, keys: set[str]) -> None:
    config = assigned_config("clean-files", every)
    assert set(config) == keys
    assert config["timezone"] == "UTC"
    build_trigger("cron", config)  # valid
    assert config == assigned_config("clean-files", every)  # stable
    if every == "month":
        assert 1 <= config["day"] <= 28  # a day every month has


def test_example_from_the_specification(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[tool.scheduled.clean-files]\nevery = "day"\nentrypoint = "app.jobs:clean_files"\n',
    )
    found = pyproject_declarations(path)
    assert found.errors == []
    assert found.complete == {"pyproject"}
    [declaration] = found.declarations
    config = assigned_config("clean-files", "day")
    assert declaration.name == "clean-files"
    assert declaration.source == "pyproject"
    assert declaration.fields["func"] == "app.jobs:clean_files"
    assert declaration.fields["trigger"] == "cron"
    assert declaration.fields["trigger_config"] == config
    assert declaration.fields["args"] == []
    assert declaration.fields["kwargs"] == {}
    # The assigned time is shown where the task is listed: reference, description, words.
    clock = f"{config['hour']:02d}:{config['minute']:02d}"
    assert (
        declaration.source_ref == f"{path} [tool.scheduled.clean-files]: every day at {clock} UTC"
    )
    assert clock in declaration.fields["description"]
    assert "SHA-256" in declaration.fields["description"]
    assert clock in describe_schedule("cron", config)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('every = "year"\nentrypoint = "a.b:c"', 'every = "year" is not a supported cadence'),
        ('every = 5\nentrypoint = "a.b:c"', "every = 5 is not a supported cadence"),
        ('every = "day"', 'has no "entrypoint"'),
        ('entrypoint = "a.b:c"', 'has no "every"'),
        ('every = "day"\nentrypoint = "a.b.c"', 'entrypoint = "a.b.c" is not "module:function"'),
        ('every = "day"\nentrypoint = "a.b:c"\nevry = "x"', "has unknown keys 'evry'"),
    ],
)
def test_malformed_table_is_an_error_naming_the_table(
    tmp_path: Path, table: str, message: str
) -> None:
    path = write(
        tmp_path,
        f'[tool.scheduled."nightly.report"]\n{table}\n\n'
        '[tool.scheduled.fine]\nevery = "hour"\nentrypoint = "a.b:c"\n',
    )
    found = pyproject_declarations(path)
    [error] = found.errors
    assert str(error).startswith(f'[tool.scheduled."nightly.report"] in {path}: ')
    assert message in str(error)
    # The broken table's task is left alone; the good one is declared; absent ones may retire.
    assert found.blocked == {"nightly.report"}
    assert [d.name for d in found.declarations] == ["fine"]
    assert found.complete == {"pyproject"}


def test_unparsable_file_is_an_error_and_retires_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "[tool.scheduled.x\nevery = \n")
    found = pyproject_declarations(path)
    [error] = found.errors
    assert str(path) in str(error)
    assert "cannot be read as TOML" in str(error)
    assert found.complete == set()


def test_scheduled_must_be_a_table(tmp_path: Path) -> None:
    found = pyproject_declarations(write(tmp_path, '[tool]\nscheduled = "daily"\n'))
    assert "must be a table" in str(found.errors[0])
    assert found.complete == set()


def test_missing_file_or_table_declares_nothing(tmp_path: Path) -> None:
    found = pyproject_declarations(tmp_path / "absent.toml")
    assert (found.declarations, found.errors, found.complete) == ([], [], {"pyproject"})
    found = pyproject_declarations(write(tmp_path, '[project]\nname = "x"\n'))
    assert (found.declarations, found.errors, found.complete) == ([], [], {"pyproject"})


def test_which_file_is_read(tmp_path: Path) -> None:
    with override_settings(TASKS_SCHED={"PYPROJECT": str(tmp_path / "p.toml")}):
        assert pyproject_path() == tmp_path / "p.toml"
    with override_settings(TASKS_SCHED={}, BASE_DIR=tmp_path):
        assert pyproject_path() == tmp_path / "pyproject.toml"


def test_table_name_quotes_ids_toml_would_need_quoted() -> None:
    assert table_name("clean-files") == "[tool.scheduled.clean-files]"
    assert table_name("a.b") == '[tool.scheduled."a.b"]'
