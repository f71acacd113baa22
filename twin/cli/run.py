"""``twin run`` and ``twin validate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from twin.cli.common import format_option, load, path_name, set_option
from twin.cli.progress import run_bar, shown
from twin.cli.report import report_option, write_folder_report
from twin.log import QUIET, get_logger, say

__all__ = ["add_run", "add_validate"]


def add_run(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser("run", parents=[common], help="simulate a scenario over its deployment (docs/runs.md)",
                         description="Simulate a scenario over its deployment into a result folder (docs/runs.md).")
    run.add_argument("scenario", type=Path, nargs="?", help="the scenario YAML (none with --resume)")
    run.add_argument("--out", type=Path, help="output folder (default runs/<name>/<UTC time>-<pid>-<random>/)")
    run.add_argument("--seed", type=int, help="override the scenario's seed")
    set_option(run)
    run.add_argument("--force", action="store_true",
                     help="start afresh in --out: remove every file an earlier run wrote there")
    run.add_argument("--resume", type=Path, metavar="DIR",
                     help="continue the stopped run in DIR from its last checkpoint (its scenario, seed and --set)")
    run.add_argument("--checkpoint-every-campaigns", type=int, default=0, metavar="N",
                     help="checkpoint after every N correction campaigns (0: not by count)")
    run.add_argument("--checkpoint-every-seconds", type=float, default=300.0, metavar="S",
                     help="checkpoint at the first campaign end S seconds of wall time after the last "
                          "(0: not by time)")
    format_option(run, "json = summary.json, csv = timeline.csv (accuracy and energy at each checkpoint)")
    report_option(run, "the run's")
    run.set_defaults(handler=_run)


def add_validate(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    validate = sub.add_parser("validate", parents=[common],
                              help="check a scenario and its referenced files; run nothing",
                              description="Check a scenario and the files it names, print what it describes "
                                          "(stdout), run nothing.")
    validate.add_argument("scenario", type=Path, help="the scenario YAML")
    set_option(validate)
    validate.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    from twin.scenario.schema import explain
    scenario = load(args)
    print(explain(scenario))  # the answer the command is asked for: stdout
    print("valid")
    return 0


def _run(args: argparse.Namespace) -> int:
    """A run into a folder it claims (twin.run_folder), checkpointed (twin.resume), or a stopped
    one continued with ``--resume DIR``; every check on the folder comes before the simulation."""
    from twin.report.writers import OUTPUT_FILES, SCENARIO_FILE, write_scenario
    from twin.resume import CHECKPOINT_FILE, CheckpointSchedule
    from twin.run_folder import open_run_folder, unique_run_dir
    from twin.scenario.schema import ScenarioError, load_scenario
    for flag, value in (("--checkpoint-every-campaigns", args.checkpoint_every_campaigns),
                        ("--checkpoint-every-seconds", args.checkpoint_every_seconds)):
        if not value >= 0:
            raise ScenarioError([(flag, f"must be >= 0 (0: off), got {value}")])
    schedule = CheckpointSchedule(args.checkpoint_every_campaigns, args.checkpoint_every_seconds)
    names = [*OUTPUT_FILES, CHECKPOINT_FILE]
    if args.resume is None:
        if args.scenario is None:
            raise ScenarioError([("scenario", "name the scenario file to run, or continue a run with --resume DIR")])
        scenario = load(args)
        out = args.out or unique_run_dir(Path("runs") / path_name(scenario.name))
        with open_run_folder(out, names, force=args.force) as folder:
            write_scenario(scenario, out)  # first: what --resume rebuilds the run from
            _simulate_into(folder, scenario, schedule, args, resume=False)
        return _after_run(folder.path, args)
    given = [flag for flag, value in (("SCENARIO", args.scenario), ("--out", args.out),
                                      ("--seed", args.seed is not None), ("--set", args.overrides),
                                      ("--force", args.force)) if value]
    if given:
        raise ScenarioError([("--resume", f"continues the run in {args.resume} as it was started (its "
                                          f"{SCENARIO_FILE}); do not pass {', '.join(given)}")])
    with open_run_folder(args.resume, names, resume=True, keep=(SCENARIO_FILE, CHECKPOINT_FILE),
                         flag="--resume") as folder:
        if not (folder.path / SCENARIO_FILE).is_file():
            raise ScenarioError([("--resume", f"{folder.path} holds no {SCENARIO_FILE}: nothing to resume from; "
                                              "start afresh with --force")])
        scenario = load_scenario(folder.path / SCENARIO_FILE)
        if scenario.traffic is not None:
            raise ScenarioError([("--resume", "a run with inference traffic has no checkpoints and cannot be "
                                              f"resumed yet; start it again with --out {folder.path} --force")])
        _simulate_into(folder, scenario, schedule, args, resume=True)
    return _after_run(folder.path, args)


def _simulate_into(folder, scenario, schedule, args: argparse.Namespace, resume: bool) -> None:
    from twin.report.text import summary_table
    from twin.report.writers import write_outputs
    from twin.resume import CHECKPOINT_FILE, run_checkpointed
    log = get_logger("twin.cli")
    if scenario.traffic is not None and schedule.enabled:
        log.info("no checkpoints: a run with inference traffic cannot be snapshotted yet (requests in flight); "
                 "if it is stopped, start it again with --force")
    log.info("run", scenario=scenario.name, out=str(folder.path), resume=resume)
    try:
        with run_bar(scenario.duration, shown(args.verbosity == QUIET) and scenario.outputs.progress) as progress:
            # where a resumed run continues from (a checkpoint, or the start) is said even with -q
            result = run_checkpointed(scenario, folder.path, schedule, resume=resume, progress=progress,
                                      log=log.warning)
        write_outputs(result, scenario, folder.path, prepared=True)  # summary.json last
    except (OSError, KeyboardInterrupt) as exc:  # the folder stays INCOMPLETE, with its checkpoint if any
        if scenario.traffic is not None:
            exc.add_note(f"the run is not finished; start it again with --out {folder.path} --force")
        else:
            kept = "its last checkpoint is kept" if (folder.path / CHECKPOINT_FILE).exists() else "no checkpoint yet"
            exc.add_note(f"the run is not finished ({kept}); continue it with: twin run --resume {folder.path}")
        raise
    folder.complete(CHECKPOINT_FILE)
    say(summary_table(result.summary, [row["campaigns"] for row in result.timeline]), event="summary")
    say(f"results: {folder.path}/", event="results", path=str(folder.path))


def _after_run(out: Path, args: argparse.Namespace) -> int:
    """The report, once the folder is released (built from its files alone, exactly as a later
    `twin report DIR` builds it), then the data asked for on stdout."""
    from twin.cli.common import write_data
    if args.report:
        write_folder_report(out)
    if args.format == "json":
        write_data((out / "summary.json").read_bytes())
    elif args.format == "csv":
        write_data((out / "timeline.csv").read_bytes())
    return 0
