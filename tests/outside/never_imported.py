"""Imported by no test on purpose: the policy must refuse it without importing it."""


def job() -> str:
    return "ran"
