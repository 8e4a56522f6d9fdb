#!/usr/bin/env bash
# Create a virtualenv if it is missing and install the project into it (editable).
#
#   scripts/ensure-venv.sh VENV PYTHON EXTRAS [PIP_SPEC ...]
#   scripts/ensure-venv.sh .venv python3 dev,postgres
#   scripts/ensure-venv.sh .venv-dj61 /root/.pyenv/versions/3.12.1/bin/python dev,postgres,mysql 'Django>=6.1,<6.2'
#
# pip only runs when pyproject.toml (or this script) is newer than a stamp file kept inside the
# venv, one stamp per set of extras and specs, so a second call costs a few milliseconds.
set -euo pipefail

if [[ $# -lt 3 ]]; then
    echo "usage: $0 VENV PYTHON EXTRAS [PIP_SPEC ...]" >&2
    exit 2
fi
venv=$1 python=$2 extras=$3
shift 3
self=$(realpath "$0")
# VENV is taken relative to the repository root, where pyproject.toml is.
cd "$(dirname "$self")/.."

say() { printf '==> %s\n' "$*"; }

# Debian's python3 has no ensurepip unless python3-venv is installed; as root we can fix that
# ourselves, which is what makes `make demo` work on a fresh machine.
if [[ ! -x $venv/bin/python ]]; then
    if ! command -v "$python" >/dev/null; then
        echo "error: $python not found; install it or pass another interpreter" >&2
        exit 1
    fi
    if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            say "installing python3-venv (needed by '$python -m venv')"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        else
            echo "error: '$python -m venv' is unavailable; install python3-venv" >&2
            exit 1
        fi
    fi
    say "creating $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi

stamp="$venv/.installed-$(printf '%s ' "$extras" "$@" | md5sum | cut -c1-12)"
if [[ -f $stamp && $stamp -nt pyproject.toml && $stamp -nt $self ]]; then
    exit 0
fi

# pip's own chatter (and this machine's index warnings) go to a log shown only on failure.
log="$venv/pip-install.log"
pip_install() {
    if ! "$venv/bin/python" -m pip install -q --progress-bar off "$@" >"$log" 2>&1; then
        cat "$log" >&2
        echo "error: pip install $* failed" >&2
        exit 1
    fi
}

say "installing -e .[$extras] $* into $venv"
pip_install -e ".[$extras]" "$@"

# django-stubs versions track Django's: the stubs for another Django version make mypy report
# APIs that the installed Django lacks (or miss ones it has). Pin the matching series, if any.
if [[ ,$extras, == *,dev,* ]]; then
    series=$("$venv/bin/python" -c 'import django; print("%d.%d" % django.VERSION[:2])')
    next=$("$venv/bin/python" -c 'import django; print("%d.%d" % (django.VERSION[0], django.VERSION[1] + 1))')
    if ! "$venv/bin/python" -m pip install -q --progress-bar off "django-stubs>=$series,<$next" \
        >"$log" 2>&1; then
        echo "warning: no django-stubs $series.x found; mypy uses $("$venv/bin/python" -m pip show django-stubs 2>/dev/null | sed -n 's/^Version: //p')" >&2
    fi
fi

touch "$stamp"
say "$venv ready: $("$venv/bin/python" -c 'import sys, django; print("Python %d.%d.%d" % sys.version_info[:3], "Django", django.get_version())')"
