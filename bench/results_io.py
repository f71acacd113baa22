"""What the bench studies share: one CSV writer (atomic, 6 significant digits for floats)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from twin.atomic import atomic_write_text


def write_csv(rows: list[dict], columns: list[str], path: Path) -> None:
    """``rows`` under the header ``columns``, written atomically (never a half-written file)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())
