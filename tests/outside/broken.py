"""Fails at import time, like a module with a bug in its top-level code."""

raise RuntimeError("broken on purpose")
