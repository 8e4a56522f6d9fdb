"""The callable policy: path syntax, allowed modules, registration, imports, signatures."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from django_tasks_sched import callables, register
from django_tasks_sched.callables import (
    callable_path,
    is_registered,
    project_app_modules,
    resolve_callable,
)
from django_tasks_sched.exceptions import TaskConfigError
from django_tasks_sched.signatures import check_arguments
from tests.outside import jobs as outside
from tests.testapp import jobs

# tests.outside.jobs registers its callables when imported; importing it here, at collection,
# keeps those registrations out of the per-test registry snapshots below.

OUTSIDE_ALLOWED = {"ALLOWED_MODULES": ["tests.outside"]}


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Undo registrations a test makes."""
    saved = dict(callables._registry)
    yield
    callables._registry.clear()
    callables._registry.update(saved)


def refused(path: Any) -> str:
    """Resolve ``path``, expecting a refusal on ``func``; return the message."""
    with pytest.raises(TaskConfigError) as info:
        resolve_callable(path)
    assert info.value.field == "func"
    return info.value.message


# -- path syntax ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("", "is empty"),
        (" ", "contains whitespace"),
        ("tests.testapp.jobs: add", "contains whitespace"),
        ("tests.testapp.jobs:add\n", "contains whitespace"),
        ("add", "needs a module and a name"),
        ("tests.testapp.jobs:add:x", "more than one ':'"),
        (":add", "module before ':' is missing"),
        ("tests.testapp.jobs:", "name after ':' is missing"),
        ("tests..jobs:add", "'' is not a Python identifier"),
        ("tests.testapp.jobs:add.", "'' is not a Python identifier"),
        ("tests-app.jobs:add", "'tests-app' is not a Python identifier"),
        ("tests.testapp.jobs:1add", "'1add' is not a Python identifier"),
        ("tests.testapp.jobs:class", "'class' is not a Python identifier"),
        ("os;rm:system", "is not a Python identifier"),
        ("tests.testapp.jobs:add.__globals__", "special names such as '__globals__'"),
        ("tests.testapp.jobs:Maintenance.__init__", "special names such as '__init__'"),
        ("tests.testapp.jobs.__builtins__.exec", "special names such as '__builtins__'"),
    ],
)
def test_malformed_paths_are_refused_before_importing(path: str, fragment: str) -> None:
    message = refused(path)
    assert fragment in message
    assert "package.module:function" in message


@pytest.mark.parametrize("path", [None, 42, ["tests.testapp.jobs:add"]])
def test_a_path_that_is_not_a_string_is_refused(path: Any) -> None:
    assert "must be a string" in refused(path)


# -- allowed callables ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("tests.testapp.jobs:add", jobs.add),
        ("tests.testapp.jobs.add", jobs.add),
        ("tests.testapp.jobs:Maintenance", jobs.Maintenance),
        ("tests.testapp.jobs:Maintenance.vacuum", jobs.Maintenance.vacuum),
        ("tests.testapp.jobs.Maintenance.vacuum", jobs.Maintenance.vacuum),
        ("tests.testapp.jobs:Maintenance.rebuild", jobs.Maintenance.rebuild),
    ],
)
def test_project_app_callables_resolve_in_both_styles(path: str, expected: Any) -> None:
    assert resolve_callable(path) == expected


def test_a_classmethod_comes_back_bound_to_its_class() -> None:
    assert resolve_callable("tests.testapp.jobs:Maintenance.rebuild")() == "Maintenance"


# -- the default policy: the project's own apps ---------------------------------------------------


def test_project_apps_are_the_apps_under_base_dir() -> None:
    # django.contrib.* live in site-packages; django_tasks_sched is never a project app.
    assert project_app_modules() == ("tests.testapp",)


@override_settings(BASE_DIR=None)
def test_without_base_dir_apps_outside_site_packages_count() -> None:
    # django_tasks_sched is an editable install outside site-packages here, and still excluded.
    assert project_app_modules() == ("tests.testapp",)


def test_base_dir_elsewhere_leaves_no_project_app(tmp_path: Path) -> None:
    with override_settings(BASE_DIR=tmp_path):
        assert project_app_modules() == ()
        assert "the project's own installed apps (none)" in refused("tests.testapp.jobs:add")
    assert resolve_callable("tests.testapp.jobs:add") is jobs.add


@pytest.mark.parametrize(
    ("path", "module"),
    [
        ("os:system", "os"),
        ("os.system", "os"),
        ("subprocess:run", "subprocess"),
        ("builtins:eval", "builtins"),
        ("os.path.join", "os.path"),
        ("django.core.management:call_command", "django.core.management"),
        ("django.contrib.auth.models:User", "django.contrib.auth.models"),
        ("django_tasks_sched.callables:register", "django_tasks_sched.callables"),
        ("tests.outside.jobs:unregistered_job", "tests.outside.jobs"),
        ("tests.testapp_evil.jobs:add", "tests.testapp_evil.jobs"),
        ("tests:outside", "tests"),
    ],
)
def test_default_policy_refuses_everything_else(path: str, module: str) -> None:
    message = refused(path)
    assert f"'{path}' is not allowed: module '{module}' is outside" in message
    assert "the project's own installed apps (tests.testapp)" in message
    assert "not registered with @register" in message
    assert "TASKS_SCHED['ALLOWED_MODULES']" in message  # the fix


def test_a_refused_module_is_never_imported() -> None:
    assert "tests.outside.never_imported" not in sys.modules
    refused("tests.outside.never_imported:job")
    refused("tests.outside.never_imported.job")
    assert "tests.outside.never_imported" not in sys.modules


def test_adding_the_package_as_an_installed_app_allows_it() -> None:
    path = "tests.outside.jobs:unregistered_job"
    refused(path)
    with override_settings(INSTALLED_APPS=["django_tasks_sched", "tests.testapp", "tests.outside"]):
        assert project_app_modules() == ("tests.testapp", "tests.outside")
        assert resolve_callable(path) is outside.unregistered_job
    refused(path)


def test_a_callable_imported_into_a_project_module_is_refused() -> None:
    # tests/testapp/jobs.py does `import time`: the module is allowed, time.sleep is not.
    message = refused("tests.testapp.jobs:time.sleep")
    assert "defined in module 'time'" in message
    assert "importing it into an allowed module does not make it allowed" in message


def test_a_callable_without_a_home_module_is_refused() -> None:
    assert "cannot tell which module" in refused("tests.testapp.jobs:Maintenance.mro")


# -- ALLOWED_MODULES ----------------------------------------------------------------------------


@override_settings(TASKS_SCHED=OUTSIDE_ALLOWED)
def test_allowed_modules_admit_their_modules() -> None:
    assert resolve_callable("tests.outside.jobs:unregistered_job") is outside.unregistered_job
    assert resolve_callable("tests.outside.jobs.Tools.not_registered") is (
        outside.Tools.not_registered
    )


@override_settings(TASKS_SCHED=OUTSIDE_ALLOWED)
def test_allowed_modules_replace_the_default_policy() -> None:
    message = refused("tests.testapp.jobs:add")
    assert "outside TASKS_SCHED['ALLOWED_MODULES'] (tests.outside)" in message


@pytest.mark.parametrize(
    ("allowed", "path", "ok"),
    [
        (["tests.testapp.jobs"], "tests.testapp.jobs:add", True),
        (["tests.testapp"], "tests.testapp.jobs:add", True),
        (["tests"], "tests.testapp.jobs.add", True),
        (["tests.testapp.job"], "tests.testapp.jobs:add", False),
        (["tests.testapp.jobs.add"], "tests.testapp.jobs:add", False),
        (["tests.test"], "tests.testapp.jobs:add", False),
        ([], "tests.testapp.jobs:add", False),
    ],
)
def test_allowed_modules_match_whole_module_names(allowed: list[str], path: str, ok: bool) -> None:
    with override_settings(TASKS_SCHED={"ALLOWED_MODULES": allowed}):
        if ok:
            assert resolve_callable(path) is jobs.add
        else:
            assert "is not allowed" in refused(path)


@override_settings(TASKS_SCHED=OUTSIDE_ALLOWED)
def test_a_name_imported_from_a_refused_module_is_refused() -> None:
    # tests/outside/jobs.py does `from os import getcwd`.
    message = refused("tests.outside.jobs:getcwd")
    assert f"defined in module '{os.getcwd.__module__}'" in message
    assert "outside TASKS_SCHED['ALLOWED_MODULES'] (tests.outside)" in message


def test_the_policy_follows_setting_changes() -> None:
    path = "tests.outside.jobs:unregistered_job"
    refused(path)
    with override_settings(TASKS_SCHED=OUTSIDE_ALLOWED):
        assert resolve_callable(path) is outside.unregistered_job
    refused(path)


# -- registered callables -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("tests.outside.jobs:registered_job", outside.registered_job),
        ("tests.outside.jobs.registered_job", outside.registered_job),
        ("tests.outside.jobs:wrapped_job", outside.wrapped_job),
        ("tests.outside.jobs:Tools.static_below", outside.Tools.static_below),
        ("tests.outside.jobs:Tools.static_above", outside.Tools.static_above),
        ("tests.outside.jobs:Tools.class_below", outside.Tools.class_below),
        ("tests.outside.jobs.Tools.class_above", outside.Tools.class_above),
    ],
)
def test_registered_callables_are_allowed_anywhere(path: str, expected: Any) -> None:
    assert resolve_callable(path) == expected
    with override_settings(TASKS_SCHED={"ALLOWED_MODULES": []}):
        assert resolve_callable(path) == expected


def test_registration_allows_that_callable_only() -> None:
    assert "is not allowed" in refused("tests.outside.jobs:unregistered_job")
    assert "is not allowed" in refused("tests.outside.jobs:Tools.not_registered")
    assert "is not allowed" in refused("tests.outside.jobs:Tools")


def test_a_registered_name_rebound_to_something_else_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outside, "registered_job", os.getcwd)
    assert "is not allowed" in refused("tests.outside.jobs:registered_job")


def test_a_registered_callable_is_only_seen_once_its_module_is_imported() -> None:
    # Looking would mean importing a module the policy refuses, running its top-level code.
    path = "tests.outside.registered_later:job"
    assert "tests.outside.registered_later" not in sys.modules
    assert "is not allowed" in refused(path)
    assert "tests.outside.registered_later" not in sys.modules
    try:
        import tests.outside.registered_later as later

        assert resolve_callable(path) is later.job
    finally:
        sys.modules.pop("tests.outside.registered_later", None)
        callables._registry.pop(path, None)


@pytest.mark.usefixtures("clean_registry")
def test_register_returns_the_callable_unchanged() -> None:
    def local() -> None:
        """A function with an unreachable path."""

    assert register(jobs.noop) is jobs.noop
    assert is_registered("tests.testapp.jobs:noop")
    descriptor = staticmethod(jobs.noop)
    assert register(descriptor) is descriptor
    with pytest.raises(ValueError, match="<locals>"):
        register(local)
    with pytest.raises(ValueError, match="<lambda>"):
        register(lambda: None)
    with pytest.raises(TypeError, match="needs a callable"):
        register(42)


def test_callable_path() -> None:
    assert callable_path(jobs.add) == "tests.testapp.jobs:add"
    assert callable_path(jobs.Maintenance.vacuum) == "tests.testapp.jobs:Maintenance.vacuum"
    assert callable_path(jobs.Maintenance.rebuild) == "tests.testapp.jobs:Maintenance.rebuild"


# -- import and attribute failures ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        (
            "tests.testapp.jobz:add",
            "cannot import module 'tests.testapp.jobz' (No module named 'tests.testapp.jobz')",
        ),
        (
            "tests.testapp.jobz.add",
            "cannot import module 'tests.testapp.jobz' (No module named 'tests.testapp.jobz')",
        ),
        ("tests.testapp.jobs:nope", "module 'tests.testapp.jobs' has no attribute 'nope'"),
        ("tests.testapp.jobs.nope", "module 'tests.testapp.jobs' has no attribute 'nope'"),
        (
            "tests.testapp.jobs:Maintenance.nope",
            "'tests.testapp.jobs:Maintenance' has no attribute 'nope'",
        ),
        (
            "tests.testapp.jobs.Maintenance.nope",
            "'tests.testapp.jobs:Maintenance' has no attribute 'nope'",
        ),
        (
            "tests.testapp.jobs:NOT_CALLABLE",
            "'tests.testapp.jobs:NOT_CALLABLE' is not callable (it is of type int)",
        ),
        (
            "tests.testapp.jobs.NOT_CALLABLE",
            "'tests.testapp.jobs.NOT_CALLABLE' is not callable (it is of type int)",
        ),
        ("tests.testapp:jobs", "is not callable (it is of type module)"),
        # "tests.testapp.jobs.add" is no module ("jobs is not a package"): read as attributes.
        ("tests.testapp.jobs.add.nope", "'tests.testapp.jobs:add' has no attribute 'nope'"),
    ],
)
def test_import_and_attribute_failures(path: str, fragment: str) -> None:
    assert fragment in refused(path)


@override_settings(TASKS_SCHED={"ALLOWED_MODULES": ["dts_nowhere"]})
def test_a_missing_top_level_package_names_the_longest_module_tried() -> None:
    message = refused("dts_nowhere.jobs.cleanup")
    assert message == "cannot import module 'dts_nowhere.jobs' (No module named 'dts_nowhere')"


@override_settings(TASKS_SCHED={"ALLOWED_MODULES": ["dts_syntax_error"]})
def test_a_syntax_error_becomes_a_clean_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dts_syntax_error.py").write_text("def job(:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        message = refused("dts_syntax_error:job")
    finally:
        sys.modules.pop("dts_syntax_error", None)
    assert message.startswith("importing module 'dts_syntax_error' failed: SyntaxError")


@override_settings(TASKS_SCHED=OUTSIDE_ALLOWED)
@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        (
            "tests.outside.broken:job",
            "importing module 'tests.outside.broken' failed: RuntimeError: broken on purpose",
        ),
        ("tests.outside.broken.job", "RuntimeError: broken on purpose"),
        ("tests.outside.exits:job", "importing module 'tests.outside.exits' failed: SystemExit: 3"),
        (
            "tests.outside.imports_missing:job",
            "cannot import module 'tests.outside.imports_missing' "
            "(No module named 'dts_no_such_dependency')",
        ),
        (
            "tests.outside.imports_missing.job",
            "(No module named 'dts_no_such_dependency')",
        ),
    ],
)
def test_a_module_failing_to_import_becomes_a_clean_error(path: str, fragment: str) -> None:
    assert fragment in refused(path)


# -- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("func", "args", "kwargs"),
    [
        (jobs.add, [1, 2], {}),
        (jobs.add, [1], {"b": 2}),
        (jobs.add, [], {"a": 1, "b": 2}),
        (jobs.greet, ["Ada"], {"greeting": "Hi"}),
        (jobs.takes_anything, [1, "x", None], {"any": [1]}),
        (jobs.Maintenance.vacuum, [], {}),
        (jobs.Maintenance.rebuild, (), {}),
        (outside.needs_keyword, [], {"day": "mon"}),
        (min, [1, 2], {}),  # no inspectable signature: the call itself decides
    ],
)
def test_arguments_that_fit(func: Any, args: Any, kwargs: Any) -> None:
    check_arguments(func, args, kwargs)


@pytest.mark.parametrize(
    ("func", "args", "kwargs", "field", "fragment"),
    [
        (
            jobs.add,
            [1],
            {},
            "args",
            "the arguments do not fit tests.testapp.jobs:add(a, b): "
            "missing a required argument: 'b'",
        ),
        (jobs.add, [1, 2, 3], {}, "args", "too many positional arguments"),
        (
            jobs.greet,
            ["Ada"],
            {"colour": "red"},
            "kwargs",
            "tests.testapp.jobs:greet(name, *, greeting='Hello'): "
            "got an unexpected keyword argument 'colour'",
        ),
        (jobs.add, [1, 2], {"a": 3}, "kwargs", "multiple values for argument 'a'"),
        (outside.needs_keyword, [], {}, "kwargs", "missing a required"),
        (outside.needs_keyword, ["mon"], {}, "args", "too many positional arguments"),
        (
            jobs.Maintenance.rebuild,
            [1],
            {},
            "args",
            "tests.testapp.jobs:Maintenance.rebuild(): too many positional arguments",
        ),
        (jobs.noop, {"a": 1}, {}, "args", "must be a JSON list"),
        (jobs.noop, "ab", {}, "args", "must be a JSON list"),
        (jobs.noop, [], [1], "kwargs", "must be a JSON object"),
        (jobs.noop, [], {1: "a"}, "kwargs", "must be a JSON object"),
    ],
)
def test_arguments_that_do_not_fit(
    func: Any, args: Any, kwargs: Any, field: str, fragment: str
) -> None:
    with pytest.raises(TaskConfigError) as info:
        check_arguments(func, args, kwargs)
    assert info.value.field == field
    assert fragment in info.value.message


def test_resolved_callables_run() -> None:
    assert resolve_callable("tests.testapp.jobs:add")(2, 3) == 5
    assert resolve_callable("tests.outside.jobs:Tools.class_above")() == "Tools"
    assert time.sleep is not resolve_callable("tests.testapp.jobs:sleep")
