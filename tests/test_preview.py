"""The schedule editor's preview endpoint: the Task form's verdict as JSON, nothing saved."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from django_tasks_sched.admin.preview import MAX_BODY, OBJECT_ID
from django_tasks_sched.models import Task, TaskRun
from tests.factories import make_task
from tests.test_admin import form_data, login, staff_user

pytestmark = pytest.mark.django_db

PREVIEW = reverse("admin:django_tasks_sched_task_preview")
#: Far from now: previewing it never makes anything due.
LATER = {"hours": 6, "start_date": "2100-01-01T00:00:00", "timezone": "Europe/Berlin"}


@pytest.fixture
def admin() -> Client:
    return login(User.objects.create_superuser("root", "root@example.com", "pw"))


def preview(
    client: Client, status: int = 200, object_id: str = "", **fields: Any
) -> dict[str, Any]:
    """The preview's answer to the add form's valid fields changed by ``fields``."""
    if object_id:
        fields[OBJECT_ID] = object_id
    response = client.post(PREVIEW, form_data(**fields))
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    answer: dict[str, Any] = response.json()
    return answer


# -- answers --------------------------------------------------------------------------------------


def test_a_weekday_crontab_is_described_with_five_fire_times_in_both_zones(
    admin: Client, settings: Any
) -> None:
    settings.TIME_ZONE = "UTC"
    answer = preview(
        admin, trigger_config='{"crontab": "30 9 * * mon-fri", "timezone": "America/New_York"}'
    )
    assert answer["errors"] == {}
    assert "09:30" in answer["description"]
    assert "America/New_York" in answer["description"]
    assert answer["trigger_config"] == {
        "crontab": "30 9 * * mon-fri",
        "timezone": "America/New_York",
    }
    assert len(answer["fire_times"]) == 5
    for fire in answer["fire_times"]:
        assert fire["task_zone"][11:19] == "09:30:00"
        assert fire["task_zone"].endswith(("EST", "EDT"))
        assert fire["site_zone"].endswith("UTC")
        assert fire["site_zone"][11:16] in ("14:30", "13:30")


def test_an_interval_and_a_date(admin: Client) -> None:
    answer = preview(admin, trigger="interval", trigger_config=json.dumps(LATER))
    assert answer["errors"] == {}
    assert "6 hours" in answer["description"]
    assert [fire["task_zone"] for fire in answer["fire_times"][:2]] == [
        "2100-01-01 00:00:00 CET",
        "2100-01-01 06:00:00 CET",
    ]
    once = {"run_date": "2100-06-01T12:00:00", "timezone": "Europe/Berlin"}
    answer = preview(admin, trigger="date", trigger_config=json.dumps(once))
    assert answer["errors"] == {}
    assert [fire["task_zone"] for fire in answer["fire_times"]] == ["2100-06-01 12:00:00 CEST"]


def test_errors_name_their_fields_and_the_rest_is_still_previewed(admin: Client) -> None:
    answer = preview(admin, name="", func="tests.testapp.jobs:nope")
    assert set(answer["errors"]) == {"name", "func"}
    assert len(answer["fire_times"]) == 5  # the schedule itself is fine
    answer = preview(admin, trigger_config='{"crontab": "61 * * * *"}')
    assert set(answer["errors"]) == {"trigger_config"}
    assert answer["description"] == ""
    assert answer["fire_times"] == []
    assert answer["trigger_config"] is None
    answer = preview(admin, trigger="interval", trigger_config='{"hours": 1, "colour": "red"}')
    assert "colour" in " ".join(answer["errors"]["trigger_config"])


def test_the_task_being_edited_keeps_its_own_name(admin: Client) -> None:
    task = make_task("nightly", trigger="cron", trigger_config={"crontab": "30 2 * * *"})
    make_task("other")
    answer = preview(admin, object_id=str(task.pk))
    assert answer["errors"] == {}
    answer = preview(admin, name="other", object_id=str(task.pk))
    assert list(answer["errors"]) == ["name"]
    # On the add page, the same name is taken.
    assert list(preview(admin)["errors"]) == ["name"]


def test_a_task_that_does_not_exist(admin: Client) -> None:
    for object_id in ("999999", "not-a-number", "1\x00"):
        answer = preview(admin, status=404, object_id=object_id)
        assert answer["errors"]["__all__"]


# -- who may ask ----------------------------------------------------------------------------------


def test_permissions() -> None:
    task = make_task("nightly", trigger="interval", trigger_config=LATER)
    viewer = login(staff_user("viewer", "view_task"))
    assert viewer.post(PREVIEW, form_data()).status_code == 403
    assert viewer.post(PREVIEW, form_data(**{OBJECT_ID: str(task.pk)})).status_code == 403
    adder = login(staff_user("adder", "view_task", "add_task"))
    assert adder.post(PREVIEW, form_data(name="new")).status_code == 200
    assert adder.post(PREVIEW, form_data(**{OBJECT_ID: str(task.pk)})).status_code == 403
    changer = login(staff_user("changer", "view_task", "change_task"))
    assert changer.post(PREVIEW, form_data(name="new")).status_code == 403
    assert changer.post(PREVIEW, form_data(**{OBJECT_ID: str(task.pk)})).status_code == 200
    # Not logged in: the admin's login page, not an answer.
    assert Client().post(PREVIEW, form_data()).status_code == 302


def test_the_run_permission_guard_previews_as_it_saves() -> None:
    editor = login(staff_user("editor", "view_task", "add_task", "change_task"))
    answer = preview(editor, trigger="interval", trigger_config='{"seconds": 30}')
    assert "run_task" in " ".join(answer["errors"]["trigger_config"])


def test_csrf_is_required(admin: Client) -> None:
    user = User.objects.get(username="root")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(PREVIEW, form_data()).status_code == 403


def test_only_post(admin: Client) -> None:
    assert admin.get(PREVIEW).status_code == 405


# -- hostile input --------------------------------------------------------------------------------

HOSTILE = [
    pytest.param(
        {"trigger_config": '{"seconds": NaN}', "trigger": "interval"}, "trigger_config", id="nan"
    ),
    pytest.param(
        {"trigger_config": '{"crontab": "30 2 * * *\\u0000"}'}, "trigger_config", id="nul-json"
    ),
    pytest.param({"name": "a\x00b"}, "name", id="nul-name"),
    pytest.param({"trigger_config": "[" * 5000 + "]" * 5000}, "trigger_config", id="deep"),
    pytest.param({"trigger_config": "[1, 2]"}, "trigger_config", id="a-list"),
    pytest.param({"trigger_config": '{"crontab": 5}'}, "trigger_config", id="wrong-type"),
    pytest.param({"trigger_config": '{"crontab": {"a": [1]}}'}, "trigger_config", id="an-object"),
    pytest.param({"trigger": "bogus"}, "trigger", id="unknown-trigger"),
    pytest.param({"args": '{"a": 1}'}, "args", id="args-object"),
    pytest.param({"max_instances": "1e999"}, "max_instances", id="huge-number"),
    pytest.param({"trigger_config": "null"}, "trigger_config", id="null"),
]


@pytest.mark.parametrize(("fields", "field"), HOSTILE)
def test_hostile_input_is_an_error_on_its_field(
    admin: Client, fields: dict[str, Any], field: str
) -> None:
    answer = preview(admin, **fields)
    assert field in answer["errors"]


def test_a_huge_body_is_refused_without_reading_a_form(admin: Client) -> None:
    answer = preview(admin, status=413, trigger_config="[" + "1," * MAX_BODY + "1]")
    assert answer["errors"]["__all__"]


@pytest.fixture
def unimported() -> Iterator[str]:
    """A module of an installed app that the policy never allows, not imported before."""
    name = "django.contrib.admin.tests"
    before = sys.modules.pop(name, None)
    yield name
    sys.modules.pop(name, None)
    if before is not None:
        sys.modules[name] = before


def test_a_forbidden_callable_is_refused_and_never_imported(admin: Client, unimported: str) -> None:
    answer = preview(admin, func=f"{unimported}:job")
    assert "func" in answer["errors"]
    assert unimported not in sys.modules


def test_nothing_is_ever_saved(admin: Client) -> None:
    task = make_task("nightly", trigger="interval", trigger_config=LATER)
    preview(
        admin,
        name="renamed",
        trigger_config='{"crontab": "* * * * *"}',
        object_id=str(task.pk),
    )
    preview(admin, name="brand-new")
    assert list(Task.objects.values_list("name", flat=True)) == ["nightly"]
    task.refresh_from_db()
    assert (task.trigger, task.trigger_config) == ("interval", LATER)
    assert not TaskRun.objects.exists()


# -- the page --------------------------------------------------------------------------------


def test_the_editor_is_inert_markup_beside_the_unchanged_json_box(admin: Client) -> None:
    task = make_task("nightly", trigger="interval", trigger_config=LATER)
    for url in (
        reverse("admin:django_tasks_sched_task_add"),
        reverse("admin:django_tasks_sched_task_change", args=[task.pk]),
    ):
        page = admin.get(url).content.decode()
        # Without JavaScript a <template> shows nothing and posts nothing: the JSON box is the
        # form's only schedule input, and the editor's inputs have no names to post.
        assert '<template id="dts-schedule-editor">' in page
        assert 'name="trigger_config"' in page
        editor = page.split('<template id="dts-schedule-editor">')[1].split("</template>")[0]
        assert " name=" not in editor
        assert f'data-preview-url="{PREVIEW}"' in page
    assert f'data-object-id="{task.pk}"' in page


def test_a_declared_schedule_gets_no_editor_inputs(admin: Client) -> None:
    task = make_task(
        "declared",
        trigger="interval",
        trigger_config=LATER,
        source=Task.Source.DECORATOR,
        source_ref="tests.testapp.jobs:noop",
        declared_fields=["func", "trigger", "trigger_config"],
    )
    page = admin.get(reverse("admin:django_tasks_sched_task_change", args=[task.pk]))
    # The script adds the editor only beside an editable JSON box; here there is none.
    assert 'name="trigger_config"' not in page.content.decode()
    answer = preview(admin, object_id=str(task.pk))
    assert "6 hours" in answer["description"]  # the stored schedule, described
