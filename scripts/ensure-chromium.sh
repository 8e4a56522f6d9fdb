#!/usr/bin/env bash
# Install Debian's chromium for the admin's browser tests (tests/test_admin_browser.py), when
# it is missing and we can: as root, with apt-get. Otherwise say so; those tests then skip
# (outside CI) or fail (CI=true) with the same advice.
set -euo pipefail

if command -v chromium >/dev/null || [[ -n ${DTS_CHROMIUM:-} ]]; then
    exit 0
fi
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "==> installing chromium (the admin's browser tests)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
        echo "note: could not install chromium; the admin's browser tests will be skipped" >&2
        echo "      (outside CI; in CI they fail)" >&2
    fi
else
    echo "note: chromium is not installed; the admin's browser tests will be skipped" >&2
    echo "      (apt-get install chromium, or set DTS_CHROMIUM to a Chromium binary)" >&2
fi
