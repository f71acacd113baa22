"""``twin compare``, ``twin sweep`` and ``twin optimize``: many runs on the Dask engine."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from twin.cli.common import (check_scheduler, check_seeds, check_workers, count_logger, format_option, path_name,
                             set_option, write_data)
from twin.cli.progress import count_bar, shown
from twin.cli.report import report_option, write_folder_report
from twin.log import QUIET, get_logger, say
from twin.report.report_files import REPORT_FILES

__all__ = ["add_compare", "add_sweep", "add_optimize", "RUNS_FAILED", "INFEASIBLE"]

RUNS_FAILED = 5
"""A sweep finished, but some of its runs failed: their rows in sweep.csv hold the errors."""
INFEASIBLE = 3
"""``twin optimize`` found no schedule meeting the accuracy floor (earlier versions exited 0)."""

_WORKERS_HELP = "local worker processes (default: one per core; 1 = in this process)"
_SCHEDULER_HELP = "address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local cluster)"


def add_compare(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cmp = sub.add_parser("compare", parents=[common], help="run several policies on the same chip and random streams",
                         description="Run several policies on the same chip and random streams; writes "
                                     "compare.csv, compare.json and pareto.png (docs/policies.md).")
    cmp.add_argument("scenario", type=Path, help="a scenario YAML, or a compare YAML (scenario:, policies:, seeds:)")
    cmp.add_argument("--policies", help="comma-separated, e.g. none,gdc,periodic,periodic+gdc,threshold,drift_aware "
                                        "(with a scenario YAML)")
    cmp.add_argument("--seeds", type=int, help="seeds per policy (default 1, or the compare YAML's)")
    cmp.add_argument("--workers", type=int, help=_WORKERS_HELP)
    cmp.add_argument("--scheduler", help=_SCHEDULER_HELP)
    cmp.add_argument("--out", type=Path, help="output folder (default runs/<name>/compare-<UTC timestamp>/)")
    set_option(cmp)
    cmp.add_argument("--force", action="store_true", help="overwrite the results of an earlier compare in --out")
    report_option(cmp, "the comparison's")
    format_option(cmp, "csv = compare.csv, json = compare.json")
    cmp.set_defaults(handler=_compare)


def add_sweep(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    swp = sub.add_parser("sweep", parents=[common],
                         help="many runs of a base scenario (grid, list, seeds) on Dask; resumable",
                         description="Many runs of a base scenario (grid, list, seeds) on Dask, one folder per "
                                     "run; re-running resumes (docs/sweeps.md).")
    swp.add_argument("sweep", type=Path, help="a sweep YAML (scenario:, grid:, list:, seeds:, set:; docs/sweeps.md)")
    swp.add_argument("--out", type=Path, help="output folder (default runs/sweep-<file name>/: re-running resumes)")
    swp.add_argument("--scheduler", help=_SCHEDULER_HELP)
    swp.add_argument("--workers", type=int, help=_WORKERS_HELP)
    swp.add_argument("--force", action="store_true", help="re-run runs already finished in --out")
    report_option(swp, "the sweep's")
    swp.add_argument("--run-reports", action="store_true",
                     help="also build each run's report.html in its folder (default: only the sweep's)")
    format_option(swp, "csv = sweep.csv, json = a list of runs (key, seed, overrides, status, error, summary)")
    swp.set_defaults(handler=_sweep)


def add_optimize(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from twin.study.optimize import PARAMETERS
    opt = sub.add_parser("optimize", parents=[common], help="least-energy schedule parameter meeting an accuracy floor",
                         description="Search a policy's schedule parameter for the least maintenance energy that "
                                     "keeps the minimum accuracy above a floor; exits 3 when none does.")
    opt.add_argument("scenario", type=Path, help="the scenario YAML")
    opt.add_argument("--accuracy-floor", type=float, required=True,
                     help="absolute (0.95) or, when negative, relative to the t = 0 accuracy (-0.01 = one point below)")
    opt.add_argument("--policy", choices=list(PARAMETERS), default="periodic",
                     help="the policy whose parameter is searched (interval, or threshold for threshold)")
    opt.add_argument("--seeds", type=int, default=3, help="seeds per candidate value")
    opt.add_argument("--workers", type=int, help=_WORKERS_HELP)
    opt.add_argument("--lo", type=str, help="lower end of the search range (a duration for intervals)")
    opt.add_argument("--hi", type=str, help="upper end of the search range")
    opt.add_argument("--max-evaluations", type=int, default=12, help="candidate values evaluated at most")
    opt.add_argument("--out", type=Path, help="also write optimize.json here")
    set_option(opt)
    opt.add_argument("--force", action="store_true", help="overwrite optimize.json in --out")
    opt.set_defaults(handler=_optimize)


def _compare(args: argparse.Namespace) -> int:
    from twin.run_folder import open_run_folder, unique_run_dir
    from twin.scenario.loader import parse_yaml, read_input_file
    from twin.scenario.schema import ScenarioError, load_scenario
    from twin.study.compare import COMPARE_FILES, compare, load_compare_file, parse_policies, write_compare
    raw = parse_yaml(read_input_file(args.scenario, "scenario or compare file"), str(args.scenario))
    if isinstance(raw, dict) and ("policies" in raw or "scenario" in raw):  # a compare file (keys a scenario lacks)
        scenario, specs, seeds = load_compare_file(args.scenario)
        if args.overrides:
            scenario = scenario.with_overrides(args.overrides)
    else:
        scenario = load_scenario(args.scenario, args.overrides)
        if not args.policies:
            raise ScenarioError([("--policies", "name the policies to compare, e.g. --policies none,gdc,periodic")])
        specs, seeds = parse_policies(args.policies, scenario), None
    seeds = args.seeds if args.seeds is not None else (seeds or 1)
    check_seeds(seeds)
    check_workers(args.workers)
    check_scheduler(args.scheduler)
    out = args.out or unique_run_dir(Path("runs") / path_name(scenario.name), prefix="compare-")
    log = get_logger("twin.cli")
    with open_run_folder(out, [*COMPARE_FILES, *REPORT_FILES], force=args.force, command="twin compare") as folder:
        log.info("comparing", policies=len(specs), seeds=seeds, scenario=scenario.name, out=str(out))
        total = len(specs) * seeds
        with count_bar("runs", total, shown(args.verbosity == QUIET)) as bar:
            result = compare(scenario, specs, seeds, args.workers, bar.update if bar else count_logger("runs"),
                             args.scheduler)
        write_compare(result, out, force=True)
        folder.complete()
    from twin.study.compare import csv_text
    say(csv_text(result).rstrip("\n"), event="table")
    say(f"results: {out}/ ({', '.join(COMPARE_FILES)})", event="results", path=str(out))
    if args.report:
        write_folder_report(out)
    if args.format:
        write_data((out / f"compare.{args.format}").read_bytes())
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from twin import atomic
    from twin.run_folder import claim_folder
    from twin.study.sweep import load_sweep_file, run_sweep
    check_workers(args.workers)
    check_scheduler(args.scheduler)
    sweep = load_sweep_file(args.sweep)
    out = args.out or Path("runs") / f"sweep-{path_name(args.sweep.stem)}"
    atomic.prepare_output_dir(out, [], False)  # a folder (made if need be), before the claim
    log = get_logger("twin.cli")
    # A sweep always resumes: a stale claim (a killed sweep) is taken over, a live one refused.
    with claim_folder(out, resume=True, force=args.force, command="twin sweep") as folder:
        folder.mark_incomplete()
        for name in REPORT_FILES:  # the sweep's page describes the results before this run of it
            atomic.remove_output(out / name)
        log.info("sweep", file=str(args.sweep), runs=len(sweep.runs), out=str(out))
        with count_bar("runs", len(sweep.runs), shown(args.verbosity == QUIET)) as bar:
            rows = run_sweep(sweep, out, args.workers, args.scheduler, args.force,
                             bar.update if bar else count_logger("runs"), run_reports=args.run_reports)
        folder.complete()
    failed = [key for key, row in rows.items() if row["status"] == "failed"]
    resumed = sum(1 for row in rows.values() if row.get("resumed"))
    summary = (f"{len(rows) - len(failed)} of {len(sweep.runs)} runs finished ({resumed} found done), "
               f"{len(failed)} failed; results: {out}/sweep.csv")
    if failed:
        log.warning(summary, failed=failed)
    else:
        say(summary, event="results", path=str(out))
    if args.report:
        write_folder_report(out)
    if args.format == "csv":
        write_data((out / "sweep.csv").read_bytes())
    elif args.format == "json":
        runs = []
        for run in sweep.runs:
            row = rows.get(run.key, {"status": "pending"})
            runs.append({"key": run.key, "seed": run.seed, "overrides": run.overrides, "status": row["status"],
                         "error": row.get("error"), "summary": row.get("summary")})
        from twin.atomic import finite_or_null
        write_data(json.dumps(finite_or_null(runs), indent=2, sort_keys=True, allow_nan=False))
    return RUNS_FAILED if failed else 0


def _optimize(args: argparse.Namespace) -> int:
    from twin.atomic import atomic_write_json, prepare_output_dir
    from twin.scenario.schema import ScenarioError, load_scenario
    from twin.study.optimize import PARAMETERS, optimize
    from twin.study.search import format_result, result_to_json
    from twin.units import parse_duration
    scenario = load_scenario(args.scenario, args.overrides)
    parameter = PARAMETERS[args.policy]
    check_seeds(args.seeds)
    check_workers(args.workers)
    if not math.isfinite(args.accuracy_floor) or not -1 <= args.accuracy_floor <= 1:
        raise ScenarioError([("--accuracy-floor", f"must be a finite accuracy in -1 .. 1, got {args.accuracy_floor}")])
    if args.max_evaluations < 2:
        raise ScenarioError([("--max-evaluations", f"must be >= 2 (the search starts with a grid), got {args.max_evaluations}")])

    def bound(text: str | None, flag: str) -> float | None:
        if text is None:
            return None
        try:
            value = float(parse_duration(text)) if parameter.integer else float(text)
        except (ValueError, OverflowError) as exc:
            raise ScenarioError([(flag, str(exc))]) from None
        if not math.isfinite(value) or value <= 0:
            raise ScenarioError([(flag, f"must be a finite value > 0 (the search is logarithmic), got {text!r}")])
        return value

    lo, hi = bound(args.lo, "--lo"), bound(args.hi, "--hi")
    if lo is not None and hi is not None and lo >= hi:
        raise ScenarioError([("--lo", f"must be below --hi ({args.lo} >= {args.hi})")])
    if args.out:
        prepare_output_dir(args.out, ["optimize.json"], args.force)
    log = get_logger("twin.cli")
    log.info(f"optimizing {args.policy}.{parameter.name} on {scenario.name} ({args.seeds} seeds per candidate)")
    result, parameter, floor = optimize(scenario, args.policy, args.accuracy_floor, args.seeds, args.workers,
                                        lo, hi, args.max_evaluations, log.info)
    print(format_result(result, parameter.name, parameter.formatter))  # the answer asked for: stdout
    if args.out:
        payload = result_to_json(result, parameter.name)
        payload.update({"policy": args.policy, "scenario": {"name": scenario.name, "sha256": scenario.sha256()},
                        "seeds": args.seeds, "floor_argument": args.accuracy_floor, "floor": floor})
        atomic_write_json(args.out / "optimize.json", payload)
        say(f"results: {args.out}/optimize.json", event="results", path=str(args.out / "optimize.json"))
    if not result.feasible:
        log.warning("no feasible value: nothing met the accuracy floor", floor=floor, exit_code=INFEASIBLE)
        return INFEASIBLE
    return 0
