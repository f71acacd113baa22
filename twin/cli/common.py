"""What the commands share: the logging and output options, checks of flags, data on stdout."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any

from twin.log import NORMAL, QUIET, VERBOSE, get_logger

__all__ = ["FORMATS", "common_options", "set_option", "format_option", "path_name", "load", "check_scheduler",
           "check_seeds", "check_workers", "write_data", "count_logger"]

FORMATS = ("csv", "json")


def common_options() -> argparse.ArgumentParser:
    """``-q``/``-v``/``--log-json``: a parent of every command's parser."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent  # in "options", beside each command's own (argparse drops a mutual exclusion nested in a group)
    level = parent.add_mutually_exclusive_group()
    level.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=QUIET, default=NORMAL,
                       help="warnings and errors only: no progress bar, no progress or summary lines")
    level.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=VERBOSE,
                       help="debug lines too: every correction campaign and every tile it probed")
    group.add_argument("--log-json", action="store_true",
                       help="log as JSON lines (one object per line: timestamp, level, event, scope, fields) "
                            "instead of readable lines")
    return parent


def set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a scenario value (a YAML scalar), e.g. --set policy.interval='12 h'; "
                             "repeat for several")


def format_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--format", choices=FORMATS,
                        help=f"also write the results to stdout as data: {what} (default: none; messages "
                             "always go to stderr)")


def path_name(name: str) -> str:
    """A scenario name made safe as one folder name under runs/: letters, digits, ``.``, ``_``
    and ``-`` kept, anything else (``/``, ``..``, spaces) replaced, no leading dot, at most 100
    characters; a name that keeps nothing becomes ``scenario``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100].lstrip(".")
    return safe or "scenario"


def load(args: argparse.Namespace) -> Any:
    """The scenario of ``args.scenario`` with ``--set`` (and ``--seed``) applied."""
    from twin.scenario.schema import load_scenario
    overrides = list(args.overrides)
    if getattr(args, "seed", None) is not None:
        overrides.append(f"seed={args.seed}")
    return load_scenario(args.scenario, overrides)


def check_scheduler(address: str | None) -> None:
    """A Dask scheduler address is ``tcp://HOST:PORT`` (or tls://, or HOST:PORT): checked before anything runs."""
    from twin.scenario.loader import ScenarioError
    if address is not None and not re.fullmatch(r"((tcp|tls)://)?[A-Za-z0-9._-]+:\d{1,5}", address):
        raise ScenarioError([("--scheduler", f"expected an address such as tcp://10.0.0.5:8786, got {address!r}")])


def check_seeds(seeds: int) -> None:
    from twin.scenario.bounds import MAX_SEEDS
    from twin.scenario.loader import ScenarioError
    if not 1 <= seeds <= MAX_SEEDS:
        raise ScenarioError([("--seeds", f"must be 1 .. {MAX_SEEDS:,}, got {seeds}")])


def check_workers(workers: int | None) -> None:
    from twin.scenario.loader import ScenarioError
    if workers is not None and workers < 1:
        raise ScenarioError([("--workers", f"must be >= 1, got {workers}")])


def write_data(text: str | bytes) -> None:
    """The data asked for with ``--format``: the only thing a command writes to stdout."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def count_logger(what: str) -> Callable[[int, int], None]:
    """Progress by runs as log lines (info), where no bar is drawn (stderr not a terminal)."""
    log = get_logger("twin.cli")
    return lambda done, total: log.info(f"{what} done", done=done, total=total)
