"""A policy module whose import fails with something other than ImportError."""

raise RuntimeError("no licence server")
