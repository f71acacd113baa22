"""The argument parser of ``twin``: one subcommand per module (the CLI reference, docs/cli.md, is
generated from it by twin/docgen.py)."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version

from twin.cli.common import common_options

__all__ = ["build_parser", "twin_version"]


def twin_version() -> str:
    """The installed pcm-twin's version (its package metadata)."""
    try:
        return version("pcm-twin")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    from twin.cli.report import add_report
    from twin.cli.run import add_run, add_validate
    from twin.cli.schema import add_schema
    from twin.cli.study import add_compare, add_optimize, add_sweep
    parser = argparse.ArgumentParser(
        prog="twin", description="pcm-twin: digital twin of a self-correcting phase-change-memory analog AI chip. "
                                 "Data goes to stdout only when asked for (--format, schema, validate, optimize); "
                                 "messages, logs and progress go to stderr.")
    parser.add_argument("--version", action="version", version=f"%(prog)s (pcm-twin) {twin_version()}",
                        help="print the version of pcm-twin and exit")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error (exit 1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands",
                                help="run `twin COMMAND --help` for its options")
    common = common_options()
    for add in (add_run, add_validate, add_compare, add_sweep, add_optimize, add_report, add_schema):
        add(sub, common)
    return parser
