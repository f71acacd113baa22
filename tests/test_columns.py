"""The data dictionary (twin/report/columns.py) is what the writers write: headers, order and
types of every CSV file, and docs/data-dictionary.md lists every column."""

import csv
import dataclasses
import io
from pathlib import Path

import pytest

from tiny_chip import random_digits_checkpoint
from twin.report.columns import FILES, TYPES, ColumnError, data_dictionary_markdown, table_text
from twin.report.records import collect, device_pulse_tables
from twin.report.writers import write_outputs
from twin.scenario.build import build
from twin.scenario.schema import Scenario
from twin.study import compare as compare_mod
from twin.study.compare import csv_text as compare_csv, policy_metrics
from twin.study.sweep import csv_text as sweep_csv, load_sweep_file

DOCS = Path(__file__).resolve().parent.parent / "docs"

# A few seconds: random weights on 64 x 64 tiles, 3 days, daily correction, a little traffic, the trace on
TINY = ["duration=3 d", "policy.name=periodic", "policy.interval=1 d", "checkpoints.count=2",
        "evaluation.accuracy_samples=1", "evaluation.test_images=16", "network.sa_iterations=20",
        "network.sa_restarts=0", "outputs.progress=false", "chip.rows=64", "chip.cols=64", "outputs.trace=true",
        "traffic.rate=5000 /s", "traffic.windows.steady=2", "traffic.windows.length=10 ms"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real run's folder, and a second folder of the same run written with the pulse histogram
    (as a chip with more than DEVICE_ROWS_MAX pulsed devices writes it)."""
    folder = tmp_path_factory.mktemp("columns")
    weights = random_digits_checkpoint(folder)
    scenario = Scenario(name="columns").with_overrides(TINY + [f"network.checkpoint={weights}"])
    assembly = build(scenario)
    assembly.run()
    result = collect(assembly, 0.0)
    _, histogram = device_pulse_tables(assembly, max_rows=10)
    assert histogram
    out = write_outputs(result, scenario, folder / "run")
    hist_out = write_outputs(dataclasses.replace(result, device_pulses=None, device_pulse_histogram=histogram),
                             scenario, folder / "histogram")
    return scenario, result, out, hist_out


def _rows(text: str) -> tuple[list[str], list[dict]]:
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def _check_types(name: str, text: str, **families) -> int:
    """Every cell parses as its column's declared type; empty cells only where allowed."""
    resolved = dict(FILES[name].resolved(**families))
    header, rows = _rows(text)
    assert header == list(resolved)
    for row in rows:
        for column, cell in row.items():
            spec = resolved[column]
            if cell == "":
                assert spec.nullable, f"{name}:{column} is empty"
            elif spec.type == "int":
                assert str(int(cell)) == cell, f"{name}:{column}={cell!r}"
            elif spec.type == "float":
                float(cell)
            elif spec.type == "bool":
                assert cell in ("True", "False"), f"{name}:{column}={cell!r}"
    return len(rows)


def test_a_real_runs_files_have_the_dictionarys_columns_in_order_and_types(tiny_run):
    _, result, out, hist_out = tiny_run
    written = {p.name for p in out.glob("*.csv")}
    assert written == {"timeline.csv", "campaigns.csv", "device_pulses.csv", "trace.csv", "service.csv"}
    assert {p.name for p in hist_out.glob("*.csv")} == written - {"device_pulses.csv"} | {"device_pulses_histogram.csv"}
    for folder, names in ((out, written), (hist_out, ["device_pulses_histogram.csv"])):
        for name in names:
            text = (folder / name).read_text()
            assert text.splitlines()[0] == ",".join(FILES[name].names())
            assert _check_types(name, text) > 0, name  # rows there, so the types were checked
    # the row builders' own order is the dictionary's: the files are what they were before it
    for name, rows in (("timeline.csv", result.timeline), ("campaigns.csv", result.campaigns),
                       ("device_pulses.csv", result.device_pulses), ("trace.csv", result.trace),
                       ("service.csv", result.service)):
        assert list(rows[0]) == FILES[name].names(), name


def test_compare_csv_is_the_dictionarys(tiny_run):
    _, result, _, _ = tiny_run
    metrics = policy_metrics([result.summary, result.summary | {"seed": 1}])
    comparison = {"order": ["periodic", "broken"],
                  "policies": {"broken": {"errors": [{"seed": 0, "error": "RuntimeError: x"}]},
                               "periodic": metrics | {"errors": []}}}
    text = compare_csv(comparison)
    assert _check_types("compare.csv", text) == 2
    _, rows = _rows(text)
    assert [r["policy"] for r in rows] == ["periodic", "broken"] and rows[1]["errors"] == "1"
    assert float(rows[0]["latency_p99_s_mean"]) > 0 and rows[1]["accuracy_final_mean"] == ""
    figures = {figure for figure, _ in compare_mod.CSV_COLUMNS}
    assert figures == set(compare_mod.RUN_FIGURES) | set(compare_mod.TRAFFIC_METRICS)  # none left out


def test_sweep_csv_is_the_dictionarys_with_one_column_per_factor(tiny_run, tmp_path):
    scenario, result, out, _ = tiny_run
    (tmp_path / "sweep.yaml").write_text(f"scenario: {out / 'scenario.resolved.yaml'}\n"
                                         "grid:\n  policy.interval: [1 d, 2 d]\nlist:\n  - {chip.levels: 4}\n  - {}\n")
    sweep = load_sweep_file(tmp_path / "sweep.yaml")
    assert sweep.factors == ["policy.interval", "chip.levels"]
    rows = {sweep.runs[0].key: {"status": "ok", "summary": result.summary},
            sweep.runs[1].key: {"status": "failed", "error": "RuntimeError: boom"}}
    text = sweep_csv(sweep, rows)
    assert _check_types("sweep.csv", text, factor=sweep.factors) == 4
    header, table = _rows(text)
    assert header[:4] == ["run", "seed", "policy.interval", "chip.levels"]
    assert [r["status"] for r in table] == ["ok", "failed", "pending", "pending"]
    assert table[0]["campaigns"] == str(result.summary["campaigns"]) and table[1]["chip.levels"] == ""
    from twin.report.columns import RUN_FIGURES, TRAFFIC_FIGURES
    assert [c.name for c in RUN_FIGURES] == list(compare_mod.RUN_FIGURES)
    assert [c.name for c in TRAFFIC_FIGURES] == list(compare_mod.TRAFFIC_METRICS)


def test_a_row_that_breaks_the_dictionary_is_refused(tiny_run, tmp_path):
    scenario, result, _, _ = tiny_run
    extra = dataclasses.replace(result, campaigns=[dict(result.campaigns[0], surprise=1)] + result.campaigns[1:])
    with pytest.raises(ColumnError, match="surprise"):
        write_outputs(extra, scenario, tmp_path / "extra")
    short = [{k: v for k, v in row.items() if k != "accuracy_std"} for row in result.timeline]
    with pytest.raises(ColumnError, match="accuracy_std"):
        write_outputs(dataclasses.replace(result, timeline=short), scenario, tmp_path / "short")
    row = dict(result.timeline[0], t_ns=None)
    with pytest.raises(ColumnError, match="t_ns"):
        table_text("timeline.csv", [row])
    with pytest.raises(ColumnError, match="factor"):
        table_text("sweep.csv", [])  # the factor columns must be named


def test_an_empty_table_still_has_its_header():
    assert table_text("campaigns.csv", []) == ",".join(FILES["campaigns.csv"].names()) + "\n"


def test_every_column_has_unit_type_and_meaning():
    assert set(FILES) == {"timeline.csv", "campaigns.csv", "device_pulses.csv", "device_pulses_histogram.csv",
                          "trace.csv", "service.csv", "compare.csv", "sweep.csv"}
    for spec in FILES.values():
        assert spec.about
        names = [c.name for c in spec.columns]
        assert len(set(names)) == len(names), spec.name
        for column in spec.columns:
            assert column.unit and column.type in TYPES, (spec.name, column.name)
            assert column.meaning.endswith(".") and len(column.meaning) > 10, (spec.name, column.name)
            assert (column.family is None) == ("<" not in column.name), (spec.name, column.name)


def test_the_page_lists_every_column_of_every_file():
    page = data_dictionary_markdown()
    assert "pd.read_csv(path)" in page
    checked_in = (DOCS / "data-dictionary.md").read_text()
    for text in (page, checked_in):
        for spec in FILES.values():
            section = text.split(f"## {spec.name}\n", 1)[1].split("\n## ", 1)[0]
            for column in spec.columns:
                assert f"| `{column.name}` | {column.unit} | {column.type} |" in section, (spec.name, column.name)
