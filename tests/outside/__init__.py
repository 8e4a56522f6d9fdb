"""Modules outside every installed app, for the callable policy tests.

Not in INSTALLED_APPS, so by default nothing here is allowed unless registered.
"""
