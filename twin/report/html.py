"""``twin report DIR``: one self-contained HTML page from an output folder alone (no re-run).

:func:`write_report` finds out what the folder holds (a ``twin run``, ``twin compare`` or
``twin sweep`` folder) and writes ``DIR/report.html`` with its plots embedded, and the same plots
beside it as ``DIR/plots/NAME.png`` and ``NAME.svg``. The page has no script and no remote
resource; the same folder gives the same bytes. ``python -m twin.report.html DIR`` does the same
from a shell. What each report holds: docs/reports.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from twin.report.folder import ReportInputError, folder_kind, read_run
from twin.report.page import Plots, document, write_page

__all__ = ["ReportInputError", "write_report", "build_report", "main"]


def build_report(folder: Path) -> tuple[str, Plots]:
    """The page (HTML text) of ``folder`` and its plots, nothing written."""
    folder = Path(folder)
    kind = folder_kind(folder)
    plots = Plots()
    if kind == "run":
        from twin.report.run_report import run_page
        run = read_run(folder)
        try:
            title, body = run_page(run, plots)
        except (KeyError, TypeError) as exc:  # a summary.json of another shape (edited, or not a twin run's)
            raise ReportInputError(folder, f"summary.json lacks or mistypes a field the report reads: "
                                           f"{type(exc).__name__}: {exc}") from None
    elif kind == "compare":
        from twin.report.study_report import compare_page
        title, body = compare_page(folder, plots)
    else:
        from twin.report.study_report import sweep_page
        title, body = sweep_page(folder, plots)
    return document(title, body), plots


def write_report(folder: Path) -> Path:
    """Write ``folder/report.html`` (and ``folder/plots/``) from the files of ``folder``; returns
    the report's path. A folder that is not a finished run, compare or sweep folder raises
    :class:`ReportInputError` (a ScenarioError: exit 2 from the CLI) naming it. report.html and
    plots/ are derived files: each call rewrites them (atomically) from the folder's results."""
    page, plots = build_report(folder)
    return write_page(Path(folder), page, plots)


def main(argv: list[str] | None = None) -> int:
    """``python -m twin.report.html DIR``: the report's path on stdout; a bad folder exits 2."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m twin.report.html DIR   (an output folder of twin run, compare or sweep)",
              file=sys.stderr)
        return 2
    try:
        print(write_report(Path(args[0])))
    except ReportInputError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:  # the environment: the folder cannot be written
        print(f"{args[0]}: cannot write the report: {exc}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
