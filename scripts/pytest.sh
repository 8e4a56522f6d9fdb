#!/usr/bin/env bash
# Run the test suite in one virtualenv against DATABASE_URL (unset: a SQLite file).
#
#   scripts/pytest.sh VENV [PYTEST_ARG ...]
#
# Prints what is being tested first, and turns pytest's exit status 5 ("no tests collected")
# into a loud failure: a typo in -k or a broken conftest must not look like a quiet pass.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${1:?usage: $0 VENV [PYTEST_ARG ...]}
shift

database=${DATABASE_URL:-sqlite (default test file)}
# Never print a password that a DATABASE_URL may carry.
database=$(sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#' <<<"$database")
printf '==> pytest in %s: %s, on %s\n' "$venv" \
    "$("$venv/bin/python" -c 'import sys, django; print("Python %d.%d.%d" % sys.version_info[:3] + ", Django " + django.get_version())')" \
    "$database"

rc=0
"$venv/bin/python" -m pytest "$@" || rc=$?
if ((rc == 5)); then
    echo "error: pytest collected no tests (exit 5); check the arguments: $*" >&2
fi
exit "$rc"
