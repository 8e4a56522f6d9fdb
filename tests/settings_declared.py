"""The test settings plus declared tasks: for scheduler subprocesses of the declared-task tests.

``DTS_TEST_TASKS_SCHED`` (JSON) is the ``TASKS_SCHED`` dict, and ``tests.declaring`` (whose
``jobs`` module uses ``@scheduler.task``) is installed.
"""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.declaring"]
TASKS_SCHED = json.loads(os.environ.get("DTS_TEST_TASKS_SCHED") or "{}")
