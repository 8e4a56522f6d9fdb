"""Calls sys.exit() at import time: resolving it must not end the process."""

import sys

sys.exit(3)
