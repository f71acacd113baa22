"""Matplotlib without a screen, and figures as deterministic PNG bytes (written atomically by callers)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

__all__ = ["plt", "png_bytes"]


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes without a timestamp or software tag (same input, same bytes); closes it."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
