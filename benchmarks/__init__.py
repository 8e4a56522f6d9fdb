"""Benchmarks of ``runscheduler`` against real scheduler processes (not part of CI).

Run ``python benchmarks/run.py --db both`` from the repository root; see docs/benchmarks.md.
"""
