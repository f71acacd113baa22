"""``twin report DIR`` and the report option of run, compare and sweep (docs/reports.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from twin.log import get_logger, say

__all__ = ["add_report", "report_option", "write_folder_report"]


def add_report(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    report = sub.add_parser("report", parents=[common], help="build DIR/report.html from an output folder (no re-run)",
                            description="Build one self-contained HTML page (plots embedded, no remote resources) "
                                        "from the files of a twin run, compare or sweep folder, and the plots "
                                        "beside it as DIR/plots/NAME.png and NAME.svg; rewrites an earlier report "
                                        "(docs/reports.md).")
    report.add_argument("folder", type=Path, metavar="DIR", help="an output folder of twin run, compare or sweep")
    report.set_defaults(handler=_report)


def report_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--no-report", dest="report", action="store_false",
                        help=f"do not build {what} report.html at the end (twin report DIR builds it later)")


def _report(args: argparse.Namespace) -> int:
    write_folder_report(args.folder)
    return 0


def write_folder_report(folder: Path) -> Path:
    """Build ``folder``'s report and say where it is (the last line a command prints)."""
    from twin.report.html import ReportInputError, write_report
    log = get_logger("twin.cli")
    log.debug("building the report", folder=str(folder))
    try:
        path = write_report(folder)
    except ReportInputError:
        raise
    except Exception:  # the folder's results stand: say so before the error's own message
        log.error(f"the results in {folder} are complete, but its report could not be built; "
                  f"try again with: twin report {folder}")
        raise
    say(f"report: {path}", event="report", path=str(path))
    return path
