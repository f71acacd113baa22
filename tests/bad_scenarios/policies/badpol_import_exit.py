"""A policy module that calls sys.exit(0) at import: the twin must not exit 0 with it."""

import sys

sys.exit(0)
