"""An app whose ``jobs`` module declares tasks with ``@scheduler.task``.

Installed only by ``tests.settings_declared`` (the scheduler subprocesses of the declared-task
tests), so the rest of the suite never syncs these declarations.
"""
