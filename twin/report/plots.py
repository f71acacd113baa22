"""Matplotlib without a screen, and figures as deterministic PNG and SVG bytes (written atomically
by callers): the same figure gives the same bytes on every run."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

# SVG element ids are hashes salted with a random value unless this is set: fix it, so an SVG's
# bytes depend on the figure only.
matplotlib.rcParams["svg.hashsalt"] = "pcm-twin"

__all__ = ["plt", "png_bytes", "svg_bytes", "png_and_svg"]

PNG_DPI = 110


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _svg(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return buffer.getvalue()


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes without a timestamp or software tag (same input, same bytes); closes it."""
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def svg_bytes(fig) -> bytes:
    """The figure as SVG bytes without a date or creator tag (same input, same bytes); closes it."""
    fig.tight_layout()
    data = _svg(fig)
    plt.close(fig)
    return data


def png_and_svg(fig) -> tuple[bytes, bytes]:
    """The figure as PNG and as SVG bytes, laid out once; closes it."""
    fig.tight_layout()
    try:
        return _png(fig), _svg(fig)
    finally:
        plt.close(fig)
