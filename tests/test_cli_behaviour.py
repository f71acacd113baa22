"""A CLI that behaves: --version, help for every option, -q/-v/--log-json on every command, data on
stdout only when asked (--format), logs of campaigns and faults with their scope, progress bars
driven by work done, exit codes as documented (docs/cli.md, docs/errors.md)."""

import argparse
import csv
import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
from importlib.metadata import version
from pathlib import Path

import pytest

from twin.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["duration=3 d", "checkpoints.count=3", "evaluation.accuracy_samples=1", "network.sa_iterations=200",
         "network.sa_restarts=2"]
FAULTS = [*SHORT, "faults.dead_tiles=[{tile: 2, at: 2 d}]"]  # a tile dies at the second campaign


def sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def twin(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PCM_TWIN_TORCH_THREADS="1")
    return subprocess.run([sys.executable, "-m", "twin.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


# ---- the parser ------------------------------------------------------------------------------------

def test_version_is_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"twin (pcm-twin) {version('pcm-twin')}"


def test_every_option_of_every_command_has_help():
    parser = build_parser()
    parsers = {"twin": parser} | {f"twin {name}": sub for name, sub in subcommands(parser).items()}
    assert {"twin run", "twin validate", "twin compare", "twin sweep", "twin optimize", "twin report",
            "twin schema"} <= set(parsers)
    missing = [f"{name} {action.option_strings or action.dest}" for name, p in parsers.items()
               for action in p._actions if not isinstance(action, argparse._SubParsersAction)
               and (not action.help or action.help == argparse.SUPPRESS)]
    assert missing == []


@pytest.mark.parametrize("flags, verbosity, json_lines", [(["-q"], -1, False), (["--quiet"], -1, False),
                                                          (["-v"], 1, False), (["--verbose", "--log-json"], 1, True),
                                                          ([], 0, False)])
def test_quiet_verbose_and_log_json_on_every_command(flags, verbosity, json_lines):
    parser = build_parser()
    required = {"run": ["s.yaml"], "validate": ["s.yaml"], "compare": ["s.yaml"], "sweep": ["w.yaml"],
                "optimize": ["s.yaml", "--accuracy-floor", "0.9"], "report": ["DIR"], "schema": []}
    assert set(required) == set(subcommands(parser))
    for command, args in required.items():
        parsed = parser.parse_args([command, *args, *flags])
        assert (parsed.verbosity, parsed.log_json) == (verbosity, json_lines), command


def test_quiet_and_verbose_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["validate", "scenarios/default.yaml", "-q", "-v"])
    assert stop.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_exit_codes_are_the_documented_table():
    import twin.cli as cli
    text = (ROOT / "docs" / "errors.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \| ([^|]+)\|", text, flags=re.M))
    assert set(table) == {"0", "1", "2", "3", "4", "5", "130"}
    assert (cli.INTERNAL_ERROR, cli.INVALID_INPUT, cli.INFEASIBLE, cli.ENVIRONMENT_ERROR, cli.RUNS_FAILED,
            cli.INTERRUPTED) == (1, 2, 3, 4, 5, 130)
    assert "optimize" in table["3"] and "A change" in table["3"] and "exited 0" in table["3"]
    assert "errors.md#exit-codes" in (ROOT / "docs" / "runs.md").read_text()


# ---- twin run: stdout, stderr, logs ----------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The faults scenario, three days, run twice: -v --log-json --format json, and -q --format csv."""
    tmp = tmp_path_factory.mktemp("cli-runs")
    verbose = twin("run", "scenarios/faults.yaml", "--out", str(tmp / "v"), *sets(FAULTS), "-v", "--log-json",
                   "--format", "json")
    quiet = twin("run", "scenarios/faults.yaml", "--out", str(tmp / "q"), *sets(FAULTS), "-q", "--format", "csv")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    return {"verbose": (verbose, tmp / "v"), "quiet": (quiet, tmp / "q")}


def test_run_format_json_writes_summary_json_and_nothing_else_on_stdout(runs):
    proc, folder = runs["verbose"]
    assert json.loads(proc.stdout) == json.loads((folder / "summary.json").read_text())
    assert proc.stdout == (folder / "summary.json").read_text()


def test_run_format_csv_writes_the_timeline_for_a_csv_reader(runs):
    proc, folder = runs["quiet"]
    assert proc.stdout == (folder / "timeline.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 3 and float(rows[-1]["t_s"]) == 3 * 86400


def test_quiet_keeps_warnings_only(runs):
    proc, _ = runs["quiet"]
    lines = proc.stderr.splitlines()
    assert lines and all("[warning" in line for line in lines), proc.stderr
    assert any("scope=chip.tile2" in line and "tile given up" in line for line in lines)


def test_log_json_lines_carry_every_campaign_and_tile_with_its_scope(runs):
    proc, folder = runs["verbose"]
    records = [json.loads(line) for line in proc.stderr.splitlines()]  # every line is one JSON object
    assert all({"event", "level", "scope", "timestamp"} <= set(r) for r in records)
    campaigns = list(csv.DictReader((folder / "campaigns.csv").open()))
    logged = {r["campaign"]: r for r in records if r["event"] == "campaign" and r["scope"] == "chip.controller"}
    assert sorted(logged) == sorted({int(row["campaign"]) for row in campaigns})
    tiles = {(r["campaign"], r["scope"]): r for r in records if r["scope"].startswith("chip.tile")
             and r["event"] in ("tile probed", "tile corrected")}
    for row in campaigns:
        record = tiles[(int(row["campaign"]), f"chip.tile{row['tile']}")]
        assert record["pulses"] == int(row["partial_set"]) + int(row["reset"])
        assert record["devices_corrected"] == int(row["devices_corrected"])
        assert (record["event"] == "tile corrected") == (row["corrected"] == "True")
    for number, record in logged.items():
        rows = [r for r in campaigns if int(r["campaign"]) == number]
        assert record["tiles_probed"] == len(rows)
        assert record["pulses"] == sum(int(r["partial_set"]) + int(r["reset"]) for r in rows)


def test_faults_are_logged_with_the_scope_of_their_tile(runs):
    proc, _ = runs["verbose"]
    records = [json.loads(line) for line in proc.stderr.splitlines()]
    injected = [r for r in records if r["event"].startswith("injected fault")]
    assert {r["kind"] for r in injected} == {"pulse", "probe_read"}
    assert all(re.fullmatch(r"chip\.tile\d+", r["scope"]) for r in injected)
    dead = [r for r in records if r["event"].startswith("tile given up")]
    assert [(r["scope"], r["level"], r["campaign"]) for r in dead] == [("chip.tile2", "warning", 2)]


def test_logging_changes_no_output_file(runs):
    (_, verbose), (_, quiet) = runs["verbose"], runs["quiet"]
    names = sorted(str(p.relative_to(verbose)) for p in verbose.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(quiet)) for p in quiet.rglob("*") if p.is_file())
    assert "report.html" in names  # the report too: it is built from the files alone
    for name in names:
        if name == "summary.json":  # wall_s is the wall time: the one figure that differs between runs
            a, b = (json.loads((folder / name).read_text()) for folder in (verbose, quiet))
            a.pop("wall_s"), b.pop("wall_s")
            assert a == b
        else:
            assert (verbose / name).read_bytes() == (quiet / name).read_bytes(), name


def test_the_report_twin_run_writes_is_what_twin_report_builds_later(runs, tmp_path):
    import shutil
    _, folder = runs["quiet"]
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    proc = twin("report", str(copy))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == f"report: {copy / 'report.html'}"
    assert (copy / "report.html").read_bytes() == (folder / "report.html").read_bytes()


def test_default_level_summarises_many_campaigns_in_a_few_lines(tmp_path):
    from twin.log import INFO_LINES_PER_RUN
    proc = twin("run", "scenarios/default.yaml", "--out", str(tmp_path / "r"),
                *sets([*SHORT, "policy.interval=2 h"]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == ""  # no --format: nothing on stdout
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["campaigns"] >= 30
    lines = [line for line in proc.stderr.splitlines() if "[info" in line and " campaigns " in line]
    assert 1 <= len(lines) <= INFO_LINES_PER_RUN + 1
    assert sum(int(re.search(r"tiles_probed=(\d+)", line).group(1)) for line in lines) == 3 * summary["campaigns"]
    assert "[debug" not in proc.stderr and "ETA" not in proc.stderr  # no bar: stderr is not a terminal
    assert f"results: {tmp_path / 'r'}/" in proc.stderr and "accuracy" in proc.stderr  # the summary table
    assert "with GDC only" in proc.stderr and "never corrected" in proc.stderr  # the baselines and the verdict


# ---- progress -------------------------------------------------------------------------------------

def test_the_run_progress_advances_at_every_campaign_end(tmp_path):
    from twin.scenario.schema import load_scenario
    from twin.simulate import simulate
    from twin.units import DAY
    scenario = load_scenario(ROOT / "scenarios" / "default.yaml", [*SHORT, "checkpoints.count=1"])
    reached: list[int] = []
    result = simulate(scenario, progress=reached.append)
    assert reached == sorted(reached) and reached[-1] == scenario.duration
    # one accuracy checkpoint, at the end: the end of the first programming (day 0) and the campaigns
    # of days 1 and 2 move the bar before it
    assert [t // DAY for t in reached if t < scenario.duration] == [0, 1, 2]
    assert result.summary["campaigns"] == 2


def test_a_terminal_gets_a_transient_bar_on_stderr_and_stdout_stays_data(tmp_path):
    master, slave = pty.openpty()
    env = dict(os.environ, PCM_TWIN_TORCH_THREADS="1", COLUMNS="120", TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "run", "scenarios/default.yaml", "--out",
                             str(tmp_path / "r"), *sets(SHORT), "--format", "json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = bytearray()

    def drain() -> None:  # the terminal must be read while the run writes to it
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other end is closed
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = proc.communicate(timeout=600)
    reader.join(timeout=60)
    os.close(master)
    assert proc.returncode == 0, seen.decode(errors="replace")[-3000:]
    text = seen.decode(errors="replace")
    assert "simulating" in text and "ETA" in text and "%" in text
    assert json.loads(out) == json.loads((tmp_path / "r" / "summary.json").read_text())


# ---- compare and sweep ----------------------------------------------------------------------------

def test_compare_format_csv_is_clean_data_and_messages_go_to_stderr(tmp_path):
    proc = twin("compare", "scenarios/default.yaml", "--policies", "none,gdc", "--workers", "1", "--out",
                str(tmp_path / "c"), *sets(SHORT), "--format", "csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == (tmp_path / "c" / "compare.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [row["policy"] for row in rows] == ["none", "gdc"]
    assert "results:" not in proc.stdout and f"results: {tmp_path / 'c'}/" in proc.stderr
    assert "runs done" in proc.stderr  # progress by runs as lines: stderr is not a terminal


def test_compare_format_json(tmp_path):
    proc = twin("compare", "scenarios/default.yaml", "--policies", "none", "--workers", "1", "--out",
                str(tmp_path / "c"), *sets(SHORT), "--format", "json", "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == json.loads((tmp_path / "c" / "compare.json").read_text())
    assert proc.stderr == ""


def test_sweep_format_json_lists_the_runs_and_csv_is_sweep_csv(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"scenario: {ROOT / 'scenarios' / 'default.yaml'}\nset: {json.dumps(SHORT)}\n"
                     "grid:\n  policy.name: [none, gdc]\n")
    proc = twin("sweep", str(sweep), "--workers", "1", "--out", str(tmp_path / "s"), "--format", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout)
    assert [run["overrides"] for run in runs] == [{"policy.name": "none"}, {"policy.name": "gdc"}]
    for run in runs:
        assert run["status"] == "ok"
        assert run["summary"] == json.loads((tmp_path / "s" / run["key"] / "summary.json").read_text())
    again = twin("sweep", str(sweep), "--workers", "1", "--out", str(tmp_path / "s"), "--format", "csv")  # resumes
    assert again.returncode == 0 and again.stdout == (tmp_path / "s" / "sweep.csv").read_text()
    assert [row["status"] for row in csv.DictReader(io.StringIO(again.stdout))] == ["ok", "ok"]
    assert "2 found done" in again.stderr


# ---- twin schema ----------------------------------------------------------------------------------

def test_schema_goes_to_stdout_or_to_a_file_never_over_one(tmp_path, capsys):
    from twin.scenario.jsonschema import scenario_json_schema
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == scenario_json_schema()
    target = tmp_path / "scenario.schema.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text()) == scenario_json_schema()
    target.write_text("mine")
    assert main(["schema", "-o", str(target)]) == 2
    assert "--force" in capsys.readouterr().err and target.read_text() == "mine"
    assert main(["schema", "-o", str(target), "--force"]) == 0
    assert json.loads(target.read_text()) == scenario_json_schema()


def test_errors_are_json_lines_with_log_json(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("duration: ten days\n")
    assert main(["validate", str(bad), "--log-json"]) == 2
    record = json.loads(capsys.readouterr().err)
    assert record["level"] == "error" and "duration" in record["event"]


def test_library_use_logs_nothing_until_the_command_line_configures_it():
    code = ("from twin.log import get_logger, attach_chip_log, configured\n"
            "get_logger('chip.tile0').warning('a warning', campaign=1)\n"
            "assert not configured() and attach_chip_log(None) is None\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
