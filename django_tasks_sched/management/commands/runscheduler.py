"""``manage.py runscheduler``: run the scheduler in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_tasks_sched import metrics
from django_tasks_sched.conf import EXECUTORS, NUMBER_RULES, get_settings, is_valid_number
from django_tasks_sched.models import Task
from django_tasks_sched.service.logs import log_to_stderr
from django_tasks_sched.service.runner import Options, SchedulerService
from django_tasks_sched.sync import sync_at_startup


class Command(BaseCommand):
    help = (
        "Run the scheduler: load active tasks, fire them on time, record every run, follow "
        "changes to the table live. Stops gracefully on SIGINT/SIGTERM."
    )
    requires_system_checks = "__all__"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--threads",
            "--workers",  # the old name
            dest="threads",
            type=int,
            help="Threads that execute runs.",
        )
        parser.add_argument(
            "--executor",
            choices=EXECUTORS,
            help="Where functions are called: in the worker threads (thread), or in a worker "
            "process per thread, killed when a run passes its timeout (process).",
        )
        parser.add_argument(
            "--grace-period", type=float, help="Seconds runs get to finish at shutdown."
        )
        parser.add_argument(
            "--poll-interval", type=float, help="Seconds between looks at the change stamp."
        )
        parser.add_argument(
            "--list",
            action="store_true",
            help="Print what would fire (each active task's next fire times) and exit.",
        )
        parser.add_argument(
            "--count",
            type=int,
            default=3,
            help="With --list: how many fire times to show per task (default 3).",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            help="Serve Prometheus metrics on this port (needs prometheus-client: the 'metrics' "
            "extra).",
        )
        parser.add_argument(
            "--metrics-address",
            default="127.0.0.1",
            help="The address the metrics are served on (default 127.0.0.1; 0.0.0.0 for all).",
        )
        parser.add_argument(
            "--log-level",
            default="INFO",
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
            help="Level of the scheduler's log lines on stderr (default INFO).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        check_options(options)
        if options["list"]:
            self.list_fires(options["count"])
            return
        configure_logging(options["log_level"])
        executor = options["executor"] or get_settings().EXECUTOR
        if executor == "process" and not os.environ.get("DJANGO_SETTINGS_MODULE"):
            raise CommandError(
                "The process executor needs DJANGO_SETTINGS_MODULE set: its worker processes "
                "load the settings from it."
            )
        if options["metrics_port"] is not None:
            serve_metrics(options["metrics_port"], options["metrics_address"])
        sync_at_startup()  # the declared tasks, as synctasks would, before any is loaded
        service = SchedulerService(
            Options.from_settings(
                threads=options["threads"],
                grace_period=options["grace_period"],
                poll_interval=options["poll_interval"],
                executor=executor,
            )
        )
        status = service.run()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        # A run that ignored the grace period is still on a pool thread, and Python would
        # wait for it at exit; it is already recorded INTERRUPTED, so leave now.
        os._exit(status)

    def list_fires(self, count: int) -> None:
        """The dry run: every active task, its schedule in words and next fire times."""
        tasks = Task.objects.active().order_by("next_run_time", "name")
        shown = 0
        for task in tasks.iterator():
            try:
                times = task.next_fire_times(count=count)
            except Exception as exc:  # a row saved past validation: any error, one line
                self.stdout.write(f"{task.name}: NOT SCHEDULED ({exc})")
                continue
            zone = task_zone(task)
            when = (
                ", ".join(f"{t.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}" for t in times)
                or "no further fires"
            )
            self.stdout.write(f"{task.name}: {task.describe_schedule()}\n    {when}")
            shown += 1
        self.stdout.write(f"{shown} active task(s) would be scheduled.")


#: Each numeric option and the setting whose rule it follows (the rule the checks apply).
OPTION_SETTINGS = {
    "threads": "THREADS",
    "grace_period": "SHUTDOWN_GRACE_PERIOD",
    "poll_interval": "POLL_INTERVAL",
}
#: Most fire times ``--list --count`` shows per task.
MAX_COUNT = 100


def check_options(options: dict[str, Any]) -> None:
    """Refuse option values the matching setting would refuse, with a usage error."""
    for option, key in OPTION_SETTINGS.items():
        value = options.get(option)
        if value is not None and not is_valid_number(key, value):
            whole, low, inclusive = NUMBER_RULES[key]
            kind = "a whole number" if whole else "a number"
            bound = f"at least {low:g}" if inclusive else f"greater than {low:g}"
            flag = "--" + option.replace("_", "-")
            raise CommandError(f"{flag} must be {kind} {bound}, not {value:g}.")
    if not 1 <= options.get("count", 1) <= MAX_COUNT:
        raise CommandError(f"--count must be from 1 to {MAX_COUNT}.")
    port = options.get("metrics_port")
    if port is not None and not 1 <= port <= 65535:
        raise CommandError(f"--metrics-port must be from 1 to 65535, not {port}.")


def serve_metrics(port: int, address: str) -> None:
    """Start the metrics server, or say clearly why it cannot start."""
    if not metrics.AVAILABLE:
        raise CommandError(
            "--metrics-port needs prometheus-client: pip install 'django-tasks-sched[metrics]'."
        )
    try:
        metrics.serve(port, address)
    except OSError as exc:
        raise CommandError(f"Cannot serve metrics on {address}:{port}: {exc}") from None


def task_zone(task: Task) -> ZoneInfo:
    """The zone a task's times read in: its ``timezone`` key, else ``TIME_ZONE``."""
    config = task.trigger_config if isinstance(task.trigger_config, dict) else {}
    return ZoneInfo(config.get("timezone") or settings.TIME_ZONE)


def configure_logging(level: str) -> None:
    """Log to stderr unless the project's LOGGING already routes our loggers."""
    ours = logging.getLogger("django_tasks_sched")
    ours.setLevel(level)
    log_to_stderr(level)
    # APScheduler logs a line per job added; with thousands of tasks that drowns the log.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLevelName(level)))
