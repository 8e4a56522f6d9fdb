"""What a query costs a thread that slept: the change-stamp read, back to back and after pauses.

An idle scheduler's CPU is its wake-ups times what each costs, so the idle benchmark (4) depends
on how cold a thread is when it wakes, which differs between machines. This prints, for the
stamp read every scheduler makes at each heartbeat, its CPU time (``time.thread_time()``)
back to back and after sleeping for longer and longer. ``DATABASE_URL`` picks the database
(migrated first)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dts_bench python -m benchmarks.wakeups
"""

from __future__ import annotations

import os
import time

import django

#: (seconds asleep before each read, reads); 0: back to back.
PAUSES = ((0.0, 200), (0.01, 20), (0.1, 10), (1.0, 10), (5.0, 6))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from django_tasks_sched.service.listen import StampReader

    call_command("migrate", verbosity=0)
    read = StampReader()
    # On SQLite a read first looks at the database's files and skips the query while they
    # stand still: without the files, every read is the query.
    read.files = ()
    read()
    print(f"the stamp read on {connection.vendor}, CPU time of the reading thread\n")
    print("| the read | CPU a read |\n|---|---|")
    for pause, count in PAUSES:
        spent = 0.0
        for _ in range(count):
            if pause:
                time.sleep(pause)
            began = time.thread_time()
            read()
            spent += time.thread_time() - began
        label = f"after {pause:g} s asleep" if pause else "back to back"
        print(f"| {label} ({count} reads) | {spent / count * 1e6:,.0f} µs |")


if __name__ == "__main__":
    main()
