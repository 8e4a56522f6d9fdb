"""Run the runscheduler benchmarks against real scheduler processes and print the table.

    python benchmarks/run.py                  # both databases, full (about 30 minutes)
    python benchmarks/run.py --db sqlite --quick
    python benchmarks/run.py --only steady,burst --markdown

PostgreSQL: ``BENCH_POSTGRES_URL`` (default postgres://postgres@127.0.0.1:5432/dts_bench); that
database is dropped and created again. SQLite: a file in a temporary directory. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import Result  # noqa: E402  (needs the path above)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter windows")
    parser.add_argument(
        "--only",
        help="comma-separated: idle,steady,burst,burst10k,startup100k,handoff,million,"
        "millionspread,peers",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--results", help=argparse.SUPPRESS)  # a child's JSON output file
    args = parser.parse_args()

    began = time.monotonic()
    compile_sources()
    if args.db == "both":
        # One process per database: Django's settings are configured once per process.
        results, notes = [], {}
        for db in ("sqlite", "postgres"):
            db_results, db_notes = run_child(db, args)
            results += db_results
            notes[db] = db_notes
    else:
        results, db_notes = run_database(args.db, args.quick, args.only)
        notes = {args.db: db_notes}
        if args.results:
            payload = {"results": [asdict(r) for r in results], "notes": db_notes}
            Path(args.results).write_text(json.dumps(payload, default=str))
            return 0
    print_notes(notes)
    print_table(results, markdown=args.markdown)
    print(
        f"\n{'quick' if args.quick else 'full'} run took {(time.monotonic() - began) / 60:.1f} min"
    )
    return 0 if all(r.met for r in results) else 1


def run_child(db: str, args: argparse.Namespace) -> tuple[list[Result], dict[str, str]]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    command = [sys.executable, __file__, "--db", db, "--results", out]
    command += ["--quick"] * args.quick + (["--only", args.only] if args.only else [])
    subprocess.run(command, check=True)
    payload = json.loads(Path(out).read_text())
    os.unlink(out)
    return [Result(**row) for row in payload["results"]], payload["notes"]


def compile_sources() -> None:
    """Byte-compile this checkout, as an installed package is: with PYTHONDONTWRITEBYTECODE
    set (as on the CI machine), each start of ours compiled 78 modules again (70 ms), while
    the peers load theirs from site-packages' bytecode."""
    import compileall

    for package in ("django_tasks_sched", "benchmarks"):
        compileall.compile_dir(ROOT / package, quiet=1)


def run_database(db: str, quick: bool, only: str | None) -> tuple[list[Result], dict[str, str]]:
    from benchmarks.cases import ALL, Plan
    from benchmarks.harness import database_url, machine_notes, open_fresh_database

    load_at_start = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix=f"dts-bench-{db}-"))
    open_fresh_database(db, database_url(db, workdir))
    plan = Plan(quick=quick, db=db, workdir=workdir)
    wanted = set(only.split(",")) if only else None
    results: list[Result] = []
    print(f"== {db}: logs in {workdir}", flush=True)
    for name, case in ALL:
        if wanted is not None and name not in wanted:
            continue
        started = time.monotonic()
        print(f"-- {name} ...", flush=True)
        for row in case(plan):
            results.append(row)
            print(
                f"   {row.benchmark}: {row.measured} [{'met' if row.met else 'MISSED'}]", flush=True
            )
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    return results, machine_notes(db, load_at_start)


def print_notes(notes: dict[str, dict[str, str]]) -> None:
    first = next(iter(notes.values()))
    print()
    for key in ("date", "cpu", "ram", "os", "python", "django", "apscheduler"):
        print(f"{key:>12}: {first[key]}")
    for db, values in notes.items():
        print(f"{db:>12}: {values['database']} ({values['driver']}); load {values['load']}")


def print_table(results: list[Result], *, markdown: bool) -> None:
    header: tuple[str, ...] = ("benchmark", "database", "measured", "target", "met")
    rows: list[tuple[str, ...]] = [
        (r.benchmark, r.database, r.measured, r.target, "yes" if r.met else "no") for r in results
    ]
    print()
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        cells = zip(row, widths, strict=True)
        print("  ".join(str(cell).ljust(width) for cell, width in cells).rstrip())


if __name__ == "__main__":
    sys.exit(main())
