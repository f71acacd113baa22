"""Named, seeded random streams: one derivation of a stream's seed from the run's seed and a
purpose, so that e.g. evaluation never shifts the chip's draws and traffic never shifts either."""

from __future__ import annotations

import hashlib

__all__ = ["named_seed"]


def named_seed(seed: int, name: str) -> int:
    """A 64-bit seed for the stream ``name`` of run ``seed`` (sha256, so streams are independent)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")
