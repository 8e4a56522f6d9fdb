"""The admin in a real browser, for the browser tests: headless Chromium driven by Playwright.

Debian's ``chromium`` package provides the browser (``.ci/run`` installs it); Playwright's own
browser download is not used. The ``page`` fixture (registered in ``tests/conftest.py``) is a
page logged in to the admin on the live server.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

CHROMIUM = os.environ.get("DTS_CHROMIUM") or shutil.which("chromium")
#: Where ``make screenshots`` has the pages the docs show saved (unset: none are taken).
SCREENSHOTS = os.environ.get("DTS_SCREENSHOTS")


def screenshot(page: Any, name: str) -> None:
    """Save the page for the docs (``docs/_static/screenshots/<name>.png``), when asked to."""
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=True)


def screenshot_of(element: Any, name: str) -> None:
    """Save one part of a page (a locator) for the docs, when asked to."""
    if SCREENSHOTS:
        element.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"))


@pytest.fixture
def page(admin_user: Any, live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A browser page logged in to the admin as ``admin``; fails the test on any 5xx answer."""
    if not CHROMIUM:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is not installed in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still plain synchronous calls between its steps.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.set_default_timeout(15_000)

        def note_errors(response: Any) -> None:
            if response.status >= 500:
                errors.append(f"{response.status} {response.url}")

        tab.on("response", note_errors)
        tab.base_url = live_server.url  # type: ignore[attr-defined]  # where the tests find the server
        tab.goto(f"{live_server.url}/admin/login/")
        tab.fill("#id_username", "admin")
        tab.fill("#id_password", "password")
        tab.click("input[type=submit]")
        tab.wait_for_url(f"{live_server.url}/admin/")
        yield tab
        browser.close()
        # The test's ORM calls between its browser steps ran in Playwright's context, on
        # connections of their own: closed here, or the test database could not be dropped.
        connections.close_all()
    assert not errors, errors
