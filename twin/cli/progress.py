"""Progress bars (rich) on stderr, driven by work done, with an ETA; only on a terminal.

``twin run`` advances by simulated time reached at every campaign end and accuracy checkpoint
(``build(scenario, progress)`` attaches the callback to the chip's bus); while the network is
prepared and the chip programmed the bar pulses instead of sitting at 0 %. ``compare`` and
``sweep`` advance by runs finished. The bars are transient (gone when the command ends) and
are not shown when stderr is not a terminal or with ``-q``; log lines are printed above them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from twin.units import format_duration

__all__ = ["shown", "run_bar", "CountBar", "count_bar"]


def shown(quiet: bool) -> bool:
    """Whether a bar is drawn: stderr is a terminal and ``-q`` was not given."""
    return not quiet and sys.stderr.isatty()


def _progress(*columns):
    from rich.console import Console
    from rich.progress import Progress
    # stdout is left alone (data may be piped from it); stderr lines (logs) print above the bar
    return Progress(*columns, console=Console(file=sys.stderr), transient=True, redirect_stdout=False,
                    redirect_stderr=True)


@contextmanager
def run_bar(total_ns: int, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A bar over a run's simulated time: yields ``progress(t_ns)``, or None when not shown."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    bar = _progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[at]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    # no total until the simulation reports: the bar pulses while the network is prepared
    task = bar.add_task("preparing", total=None, at="")
    end = format_duration(total_ns)

    def advance(t_ns: int) -> None:
        bar.update(task, description="simulating", total=total_ns, completed=min(t_ns, total_ns),
                   at=f"{format_duration(t_ns)} of {end}")

    with bar:
        yield advance


class CountBar:
    """A bar over runs finished (compare, sweep): ``update(done, total)``."""

    def __init__(self, what: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        self.bar = _progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             TextColumn("ETA"), TimeRemainingColumn())
        self.task = self.bar.add_task(what, total=total)

    def update(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)


@contextmanager
def count_bar(what: str, total: int, enabled: bool) -> Iterator[CountBar | None]:
    if not enabled:
        yield None
        return
    bar = CountBar(what, total)
    with bar.bar:
        yield bar
