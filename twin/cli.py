"""``twin``: run and validate scenarios.

Exit codes (docs/errors.md): 0 success; 1 internal error; 2 invalid input or usage (the message
names the field or flag; no traceback); 4 the environment failed (a folder not writable, a full
disk); 5 a sweep finished with failed runs; 130 interrupted. (3 is kept for an optimize that finds
no feasible schedule.)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
import traceback
from pathlib import Path

__all__ = ["main"]

INVALID_INPUT = 2
INTERNAL_ERROR = 1
ENVIRONMENT_ERROR = 4
"""The machine, not the input: a folder that cannot be created or written, a full disk."""
RUNS_FAILED = 5
"""A sweep finished, but some of its runs failed: their rows in sweep.csv hold the errors."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twin", description="pcm-twin: digital twin of a self-correcting PCM chip")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate a scenario over its deployment (docs/runs.md)")
    run.add_argument("scenario", type=Path, nargs="?", help="the scenario YAML (none with --resume)")
    run.add_argument("--out", type=Path, help="output folder (default runs/<name>/<UTC time>-<pid>-<random>/)")
    run.add_argument("--seed", type=int, help="override the scenario's seed")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override a scenario value (YAML scalar), e.g. --set policy.interval='12 h'")
    run.add_argument("--force", action="store_true",
                     help="start afresh in --out: remove every file an earlier run wrote there")
    run.add_argument("--resume", type=Path, metavar="DIR",
                     help="continue the stopped run in DIR from its last checkpoint (its scenario, seed and --set)")
    run.add_argument("--checkpoint-every-campaigns", type=int, default=0, metavar="N",
                     help="checkpoint after every N correction campaigns (default 0: not by count)")
    run.add_argument("--checkpoint-every-seconds", type=float, default=300.0, metavar="S",
                     help="checkpoint at the first campaign end S seconds of wall time after the last "
                          "(default 300; 0: not by time)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    cmp = sub.add_parser("compare", help="run several policies on the same chip and random streams")
    cmp.add_argument("scenario", type=Path, help="a scenario YAML, or a compare YAML (scenario:, policies:, seeds:)")
    cmp.add_argument("--policies", help="comma-separated, e.g. none,gdc,periodic,periodic+gdc,threshold,drift_aware")
    cmp.add_argument("--seeds", type=int, help="seeds per policy (default 1, or the compare YAML's)")
    cmp.add_argument("--workers", type=int, help="local worker processes (default: one per core; 1 = in this process)")
    cmp.add_argument("--scheduler", help="address of a running Dask scheduler (default: a local cluster)")
    cmp.add_argument("--out", type=Path, help="output folder (default runs/<name>/compare-<UTC timestamp>/)")
    cmp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    cmp.add_argument("--force", action="store_true")
    opt = sub.add_parser("optimize", help="least-energy schedule parameter meeting an accuracy floor")
    opt.add_argument("scenario", type=Path)
    opt.add_argument("--accuracy-floor", type=float, required=True,
                     help="absolute (0.95) or, when negative, relative to the t = 0 accuracy (-0.01 = one point below)")
    opt.add_argument("--policy", choices=["periodic", "threshold", "drift_aware"], default="periodic")
    opt.add_argument("--seeds", type=int, default=3)
    opt.add_argument("--workers", type=int)
    opt.add_argument("--lo", type=str, help="lower end of the search range (a duration for intervals)")
    opt.add_argument("--hi", type=str, help="upper end of the search range")
    opt.add_argument("--max-evaluations", type=int, default=12)
    opt.add_argument("--out", type=Path, help="also write optimize.json here")
    opt.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    opt.add_argument("--force", action="store_true")
    swp = sub.add_parser("sweep", help="many runs of a base scenario (grid, list, seeds) on Dask; resumable")
    swp.add_argument("sweep", type=Path, help="a sweep YAML (scenario:, grid:, list:, seeds:, set:; docs/sweeps.md)")
    swp.add_argument("--out", type=Path, help="output folder (default runs/sweep-<file name>/: re-running resumes)")
    swp.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                                         "(default: a local cluster)")
    swp.add_argument("--workers", type=int, help="local worker processes (default: one per core; 1 = in this process)")
    swp.add_argument("--force", action="store_true", help="re-run runs already finished in --out")
    swp.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    validate = sub.add_parser("validate", help="check a scenario and its referenced files; run nothing")
    validate.add_argument("scenario", type=Path)
    validate.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    return parser


def _load(args):
    from twin.scenario.schema import load_scenario
    overrides = list(args.overrides)
    if getattr(args, "seed", None) is not None:
        overrides.append(f"seed={args.seed}")
    return load_scenario(args.scenario, overrides)


def _validate(args) -> int:
    from twin.scenario.schema import explain
    scenario = _load(args)
    print(explain(scenario))
    print("valid")
    return 0


def _progress(total_ns: int, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    progress = Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.percentage:>5.1f}% of deployment"),
                        TimeElapsedColumn(), transient=True)
    task = progress.add_task("run", total=total_ns)
    return progress, (lambda now_ns: progress.update(task, completed=now_ns))


def _run(args) -> int:
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
        scenario = _load(args)
        out = args.out or unique_run_dir(Path("runs") / path_name(scenario.name))
        with open_run_folder(out, names, force=args.force) as folder:
            write_scenario(scenario, out)  # first: what --resume rebuilds the run from
            return _simulate_into(folder, scenario, schedule, args, resume=False)
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
        return _simulate_into(folder, scenario, schedule, args, resume=True)


def _simulate_into(folder, scenario, schedule, args, resume: bool) -> int:
    from twin.report.text import summary_table
    from twin.report.writers import write_outputs
    from twin.resume import CHECKPOINT_FILE, run_checkpointed
    log = lambda line: print(line, file=sys.stderr)
    if scenario.traffic is not None and schedule.enabled:
        log("note: no checkpoints: a run with inference traffic cannot be snapshotted yet (requests in flight); "
            "if it is stopped, start it again with --force")
    try:
        progress, callback = _progress(scenario.duration, args.quiet or not scenario.outputs.progress)
        with progress if progress is not None else contextlib.nullcontext():
            result = run_checkpointed(scenario, folder.path, schedule, resume=resume, progress=callback, log=log)
        write_outputs(result, scenario, folder.path, prepared=True)  # summary.json last
    except (OSError, KeyboardInterrupt) as exc:  # the folder stays INCOMPLETE, with its checkpoint if any
        if scenario.traffic is not None:
            exc.add_note(f"the run is not finished; start it again with --out {folder.path} --force")
        else:
            kept = "its last checkpoint is kept" if (folder.path / CHECKPOINT_FILE).exists() else "no checkpoint yet"
            exc.add_note(f"the run is not finished ({kept}); continue it with: twin run --resume {folder.path}")
        raise
    folder.complete(CHECKPOINT_FILE)
    print(summary_table(result.summary))
    print(f"results: {folder.path}/")
    return 0


def path_name(name: str) -> str:
    """A scenario name made safe as one folder name under runs/: letters, digits, ``.``, ``_``
    and ``-`` kept, anything else (``/``, ``..``, spaces) replaced, no leading dot, at most 100
    characters; a name that keeps nothing becomes ``scenario``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100].lstrip(".")
    return safe or "scenario"


def _compare(args) -> int:
    from twin.run_folder import open_run_folder, unique_run_dir
    from twin.study.compare import COMPARE_FILES, compare, csv_text, load_compare_file, parse_policies, write_compare
    from twin.scenario.schema import ScenarioError, load_scenario
    from twin.scenario.loader import parse_yaml, read_input_file
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
    _check_seeds(seeds)
    if args.workers is not None and args.workers < 1:
        raise ScenarioError([("--workers", f"must be >= 1, got {args.workers}")])
    _check_scheduler(args.scheduler)
    out = args.out or unique_run_dir(Path("runs") / path_name(scenario.name), prefix="compare-")
    with open_run_folder(out, COMPARE_FILES, force=args.force, command="twin compare") as folder:
        print(f"comparing {len(specs)} policies x {seeds} seeds on {scenario.name} ...", file=sys.stderr)
        result = compare(scenario, specs, seeds, args.workers, _print_count("runs"), args.scheduler)
        write_compare(result, out, force=True)
        folder.complete()
    print(csv_text(result), end="")
    print(f"results: {out}/ ({', '.join(COMPARE_FILES)})")
    return 0


def _sweep(args) -> int:
    from twin import atomic
    from twin.run_folder import claim_folder
    from twin.study.sweep import load_sweep_file, run_sweep
    from twin.scenario.schema import ScenarioError
    if args.workers is not None and args.workers < 1:
        raise ScenarioError([("--workers", f"must be >= 1, got {args.workers}")])
    _check_scheduler(args.scheduler)
    sweep = load_sweep_file(args.sweep)
    out = args.out or Path("runs") / f"sweep-{path_name(args.sweep.stem)}"
    atomic.prepare_output_dir(out, [], False)  # a folder (made if need be), before the claim
    # A sweep always resumes: a stale claim (a killed sweep) is taken over, a live one refused.
    with claim_folder(out, resume=True, force=args.force, command="twin sweep") as folder:
        folder.mark_incomplete()
        print(f"sweep {args.sweep}: {len(sweep.runs)} runs into {out}/", file=sys.stderr)
        progress = _count_progress("runs", len(sweep.runs), args.quiet)
        with progress or contextlib.nullcontext():
            count = None if args.quiet else _print_count("runs")  # plain lines when stderr is no terminal
            rows = run_sweep(sweep, out, args.workers, args.scheduler, args.force,
                             progress.update if progress else count)
        folder.complete()
    failed = [key for key, row in rows.items() if row["status"] == "failed"]
    resumed = sum(1 for row in rows.values() if row.get("resumed"))
    print(f"{len(rows) - len(failed)} of {len(sweep.runs)} runs finished ({resumed} found done), "
          f"{len(failed)} failed; results: {out}/sweep.csv", file=sys.stderr)
    return RUNS_FAILED if failed else 0


def _print_count(what: str):
    return lambda done, total: print(f"  {done}/{total} {what} done", file=sys.stderr)


class _CountProgress:
    """A rich progress bar over runs (with an ETA), shown only on a terminal."""

    def __init__(self, what: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        self.bar = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
        self.task = self.bar.add_task(what, total=total)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def update(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)


def _count_progress(what: str, total: int, quiet: bool) -> _CountProgress | None:
    return None if quiet or not sys.stderr.isatty() else _CountProgress(what, total)


def _check_scheduler(address: str | None) -> None:
    """A Dask scheduler address is ``tcp://HOST:PORT`` (or tls://, or HOST:PORT): checked before anything runs."""
    from twin.scenario.loader import ScenarioError
    if address is not None and not re.fullmatch(r"((tcp|tls)://)?[A-Za-z0-9._-]+:\d{1,5}", address):
        raise ScenarioError([("--scheduler", f"expected an address such as tcp://10.0.0.5:8786, got {address!r}")])


def _check_seeds(seeds: int) -> None:
    from twin.scenario.bounds import MAX_SEEDS
    from twin.scenario.loader import ScenarioError
    if not 1 <= seeds <= MAX_SEEDS:
        raise ScenarioError([("--seeds", f"must be 1 .. {MAX_SEEDS:,}, got {seeds}")])


def _optimize(args) -> int:
    from twin.atomic import atomic_write_json, prepare_output_dir
    from twin.study.optimize import PARAMETERS, optimize
    from twin.scenario.schema import ScenarioError, load_scenario
    from twin.study.search import format_result, result_to_json
    from twin.units import parse_duration
    scenario = load_scenario(args.scenario, args.overrides)
    parameter = PARAMETERS[args.policy]
    _check_seeds(args.seeds)
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
    log = lambda line: print(line, file=sys.stderr)
    log(f"optimizing {args.policy}.{parameter.name} on {scenario.name} ({args.seeds} seeds per candidate) ...")
    result, parameter, floor = optimize(scenario, args.policy, args.accuracy_floor, args.seeds, args.workers,
                                        lo, hi, args.max_evaluations, log)
    print(format_result(result, parameter.name, parameter.formatter))
    if args.out:
        payload = result_to_json(result, parameter.name)
        payload.update({"policy": args.policy, "scenario": {"name": scenario.name, "sha256": scenario.sha256()},
                        "seeds": args.seeds, "floor_argument": args.accuracy_floor, "floor": floor})
        atomic_write_json(args.out / "optimize.json", payload)
        print(f"results: {args.out}/optimize.json")
    return 0


TORCH_THREADS_VARIABLE = "PCM_TWIN_TORCH_THREADS"


def _set_torch_threads() -> None:
    """torch's intra-op threads for this process: ``PCM_TWIN_TORCH_THREADS``, default 1. The
    chip's tensors are small to medium and runs are independent: one thread per run is the fast
    setting (the default scenario: 15 s on one thread, 121 s on two on a loaded two-core machine,
    docs/performance.md), and sweeps run one process per core. Results do not depend on it."""
    import torch
    from twin.scenario.schema import ScenarioError
    raw = os.environ.get(TORCH_THREADS_VARIABLE, "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 1024:
        raise ScenarioError([(TORCH_THREADS_VARIABLE, f"{raw!r} is not a number of threads (1 .. 1024)")])
    torch.set_num_threads(int(raw))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from twin.atomic import OutputExistsError
    from twin.toolchain.data import DatasetError
    from twin.scenario.schema import ScenarioError
    from twin.simulate import ScenarioBuildError
    from twin.scenario.build import DeviceUnavailable
    from twin.resume import ResumeError
    from firmware_model.policies import PolicyError
    try:
        if args.command != "validate":
            _set_torch_threads()
        return {"run": _run, "validate": _validate, "compare": _compare, "optimize": _optimize,
                "sweep": _sweep}[args.command](args)
    except (ScenarioError, DatasetError, ScenarioBuildError, OutputExistsError, PolicyError, ResumeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return INVALID_INPUT
    except KeyboardInterrupt as exc:
        print("interrupted", *getattr(exc, "__notes__", ()), sep="\n", file=sys.stderr)
        return 130
    except DeviceUnavailable as exc:  # simulation.device: cuda on a machine without one
        print(f"error: {exc}", file=sys.stderr)
        return ENVIRONMENT_ERROR
    except OSError as exc:  # the environment failed (permissions, a full disk), not the input
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), *getattr(exc, "__notes__", ()),
              sep="\n", file=sys.stderr)
        return ENVIRONMENT_ERROR
    except Exception as exc:  # a bug: say so plainly
        print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
