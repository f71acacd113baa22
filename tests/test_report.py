"""twin report: the HTML page of a run, compare and sweep folder, built from the folder's files alone.

Small real folders are made once for the module (days of deployment, few checkpoints); the
verdict is also driven through every branch on synthetic summaries."""

from __future__ import annotations

import base64
import json
import math
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from twin.report import records
from twin.report.folder import ReportInputError, Table, wear_histogram
from twin.report.html import write_report
from twin.report.verdict import MARGIN, verdict
from twin.scenario.loader import ScenarioError
from twin.scenario.schema import load_scenario
from twin.simulate import simulate
from twin.report.writers import write_outputs

ROOT = Path(__file__).resolve().parents[1]
FAST = ["evaluation.accuracy_samples=1", "evaluation.test_images=200", "network.sa_iterations=200",
        "network.sa_restarts=1"]
RUN_PLOTS = ("accuracy", "energy", "campaigns", "wear")


def run_folder(out: Path, scenario_file: str, overrides: list[str]) -> Path:
    scenario = load_scenario(ROOT / scenario_file, FAST + overrides)
    return write_outputs(simulate(scenario), scenario, out)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, model_cache) -> dict[str, Path]:
    """Real output folders: a periodic run that falls below its GDC-only baseline, a full refresh
    that stays above it, a traffic run with faults (its wear as the histogram file), an older
    folder without baselines, a compare and a sweep."""
    base = tmp_path_factory.mktemp("report")
    out = {"below": run_folder(base / "below", "scenarios/default.yaml", ["duration=3 d", "checkpoints.count=3"]),
           "above": run_folder(base / "above", "scenarios/default.yaml", [
               "policy.name=full_refresh", "policy.interval=100 d", "duration=1 y", "checkpoints.count=2",
               "outputs.per_device_pulses=false"])}
    with pytest.MonkeyPatch.context() as patch:  # fewer pulsed devices than this: device_pulses_histogram.csv
        patch.setattr(records, "DEVICE_ROWS_MAX", 50)
        out["traffic"] = run_folder(base / "traffic", "scenarios/traffic.yaml", [
            "duration=2 d", "checkpoints.count=3", "traffic.windows.steady=4", "traffic.windows.length=10 ms",
            "faults.stuck_low_fraction=0.01", "faults.pulse_failure_probability=0.05"])
    out["older"] = shutil.copytree(out["below"], base / "older")
    strip_baselines(out["older"])
    from twin.study.compare import compare, parse_policies, write_compare
    scenario = load_scenario(ROOT / "scenarios/default.yaml", FAST + ["duration=2 d", "checkpoints.count=2"])
    out["compare"] = write_compare(compare(scenario, parse_policies("none,gdc,periodic", scenario), seeds=2,
                                           workers=1), base / "compare")
    from twin.study.sweep import load_sweep_file, run_sweep
    sweep_file = base / "sweep.yaml"
    sweep_file.write_text(f"scenario: {ROOT / 'scenarios/default.yaml'}\n"
                          f"set: {json.dumps(FAST + ['duration=2 d', 'checkpoints.count=2'])}\n"
                          "grid: {policy.name: [none, periodic]}\nseeds: 2\n")
    run_sweep(load_sweep_file(sweep_file), base / "sweep", workers=1)
    out["sweep"] = base / "sweep"
    for name in ("below", "above", "traffic", "older", "compare", "sweep"):
        assert write_report(out[name]) == out[name] / "report.html"
    return out


def strip_baselines(folder: Path) -> None:
    """Make ``folder`` look like one written before the unmaintained baselines existed."""
    summary = json.loads((folder / "summary.json").read_text())
    for row in summary["accuracy"]:
        row.pop("accuracy_left_alone", None)
        row.pop("accuracy_gdc_only", None)
    (folder / "summary.json").write_text(json.dumps(summary))
    lines = (folder / "timeline.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in ("accuracy_left_alone", "accuracy_gdc_only")]
    (folder / "timeline.csv").write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in lines) + "\n")


class Page(HTMLParser):
    """What the tests read off a report: cells by id (text, data-value), section ids, images, links."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.cells: dict[str, tuple[str, str | None]] = {}
        self.sections: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.verdict_kind: str | None = None
        self._open: tuple[str, str | None] | None = None
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a["id"])
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "a":
            self.links.append(a["href"])
        if a.get("id") and tag in ("td", "p"):
            self._open, self._text = (a["id"], a.get("data-value")), []
            if a["id"] == "verdict":
                self.verdict_kind = a.get("data-kind")

    def handle_data(self, data):
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag):
        if self._open and tag in ("td", "p"):
            self.cells[self._open[0]] = ("".join(self._text), self._open[1])
            self._open = None


def page(folder: Path) -> Page:
    return Page((folder / "report.html").read_text(encoding="utf-8"))


def value(p: Page, cell_id: str) -> float:
    return float(p.cells[cell_id][1])


def test_run_report_sections_numbers_and_verdict(folders):
    folder = folders["below"]
    summary = json.loads((folder / "summary.json").read_text())
    p = page(folder)
    assert p.sections == ["accuracy", "energy", "energy-context", "traffic", "campaigns", "wear", "faults", "scenario"]
    assert value(p, "energy-total") == summary["energy_j"]["total"]
    for component, joules in summary["energy_j"].items():
        if component != "total":
            assert value(p, f"energy-{component}") == joules
    assert value(p, "energy-maintenance") == summary["energy_maintenance_j"]
    assert value(p, "campaigns-total") == summary["campaigns"] > 0
    assert value(p, "misreads-total") == summary["misreads"]
    assert value(p, "displaced-total") == summary["displaced_devices"]
    assert value(p, "accuracy-end") == summary["accuracy"][-1]["accuracy"]
    assert value(p, "accuracy-min") == min(a["accuracy"] for a in summary["accuracy"])
    assert value(p, "wear-max") == summary["pulses"]["max_per_device"]
    assert p.cells["scenario-sha256"][0] == summary["scenario"]["sha256"]
    html = (folder / "report.html").read_text()
    assert (folder / "scenario.resolved.yaml").read_text().replace("'", "&#x27;").replace('"', "&quot;") in html
    # the verdict: below GDC-only, after as many campaigns as timeline.csv counts at the first checkpoint below
    first_below = next(a for a in summary["accuracy"] if a["accuracy"] < a["accuracy_gdc_only"] - MARGIN)
    rows = [line.split(",") for line in (folder / "timeline.csv").read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    done = next(int(r[header.index("campaigns")]) for r in rows if int(r[header.index("t_ns")]) == first_below["t_ns"])
    assert p.verdict_kind == "below-baseline"
    assert f"fell below the GDC-only baseline after {done} campaign" in p.cells["verdict"][0]
    assert "rewrote misread devices at the wrong level" in p.cells["verdict"][0]
    # without traffic, energy in context says what is missing instead of inventing it
    assert p.cells["tops-with-maintenance"][0] == "not recorded"
    assert "No traffic was simulated" in html


def test_opposite_verdicts_on_real_runs(folders):
    below, above = page(folders["below"]), page(folders["above"])
    assert below.verdict_kind == "below-baseline"
    assert above.verdict_kind == "above-baseline"
    summary = json.loads((folders["above"] / "summary.json").read_text())
    end = summary["accuracy"][-1]
    assert end["accuracy"] > end["accuracy_gdc_only"] + MARGIN  # the folder says so, not only the page
    assert "The full_refresh policy with GDC kept accuracy above doing nothing" in above.cells["verdict"][0]
    assert f"{100 * end['accuracy_gdc_only']:.1f}% with GDC only" in above.cells["verdict"][0]


def test_plots_exist_as_png_and_svg_and_are_embedded(folders):
    for name, expected in (("below", RUN_PLOTS), ("traffic", RUN_PLOTS + ("traffic",)),
                           ("compare", ("pareto", "curves", "effect_policy")),
                           ("sweep", ("pareto", "effect_policy_name"))):
        folder = folders[name]
        embedded = [base64.b64decode(src.removeprefix("data:image/png;base64,")) for src in page(folder).images]
        assert len(embedded) == len(expected), name
        for plot in expected:
            png = (folder / "plots" / f"{plot}.png").read_bytes()
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and png in embedded, (name, plot)
            root = ET.fromstring((folder / "plots" / f"{plot}.svg").read_bytes())
            assert root.tag == "{http://www.w3.org/2000/svg}svg", (name, plot)


def test_reports_are_self_contained(folders):
    for name in ("below", "traffic", "compare", "sweep"):
        html = (folders[name] / "report.html").read_text()
        p = Page(html)
        assert "http://" not in html and "https://" not in html and "<script" not in html.lower(), name
        assert all(src.startswith("data:image/png;base64,") for src in p.images), name
        assert all(not link.startswith(("//", "http")) and "://" not in link for link in p.links), name


def test_same_folder_same_bytes(folders, tmp_path):
    folder = folders["traffic"]
    before = {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    copy = shutil.copytree(folder, tmp_path / "elsewhere")
    (copy / "report.html").unlink()
    shutil.rmtree(copy / "plots")
    write_report(folder)
    write_report(copy)
    for relative, data in before.items():
        assert (folder / relative).read_bytes() == data, relative
        assert (copy / relative).read_bytes() == data, relative  # the path is nowhere in the page


def test_traffic_faults_and_histogram_wear(folders):
    folder = folders["traffic"]
    summary = json.loads((folder / "summary.json").read_text())
    p = page(folder)
    assert (folder / "device_pulses_histogram.csv").exists() and not (folder / "device_pulses.csv").exists()
    assert "device_pulses_histogram.csv" in (folder / "report.html").read_text()
    latency = summary["traffic"]["latency_s"]
    for k in ("mean", "p50", "p95", "p99", "max"):
        assert value(p, f"latency-{k}") == latency[k]
    assert value(p, "tops-with-maintenance") == summary["traffic"]["tops_per_w"]["with_maintenance"]
    assert value(p, "maintenance-to-inference") == summary["traffic"]["maintenance_to_inference_energy"]
    injected = summary["faults"]["injected"]
    assert injected["stuck_low"] > 0
    for key, n in injected.items():
        assert value(p, f"faults-injected-{key}") == n


def test_older_folder_says_not_recorded(folders):
    p = page(folders["older"])
    assert p.verdict_kind == "no-baselines"
    assert "not recorded" in (folders["older"] / "report.html").read_text()
    assert (folders["older"] / "plots" / "accuracy.png").exists()


def test_compare_report(folders):
    folder = folders["compare"]
    result = json.loads((folder / "compare.json").read_text())
    p = page(folder)
    assert p.sections == ["table", "pareto", "curves", "effects"]
    for label, entry in result["policies"].items():
        for key in ("accuracy_min", "accuracy_final", "energy_maintenance_per_day_j", "campaigns"):
            assert value(p, f"cmp-{label}-{key}") == entry[key]["mean"]
    svg = (folder / "plots" / "pareto.svg").read_text()
    assert "maintenance energy per day of deployment (J/day" in svg and "lowest accuracy (%)" in svg  # named axes


def test_sweep_report(folders):
    folder = folders["sweep"]
    import csv
    rows = list(csv.DictReader((folder / "sweep.csv").open()))
    p = page(folder)
    assert p.sections == ["configurations", "runs", "pareto", "effects"]
    html = (folder / "report.html").read_text()
    assert all(r["run"] in html for r in rows)
    for i, level in enumerate(["none", "periodic"]):
        finals = [float(r["accuracy_final"]) for r in rows if r["policy.name"] == level]
        assert value(p, f"cfg-C{i + 1}-accuracy_final") == pytest.approx(sum(finals) / len(finals), rel=1e-12)
    svg = (folder / "plots" / "effect_policy_name.svg").read_text()
    assert "standard error" in svg and "policy.name" in svg


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing", "no such folder"),
    (lambda d: (d / "file.txt").write_text("x") and d / "file.txt", "is a file"),
    (lambda d: d, "not an output folder"),
    (lambda d: ((d / "INCOMPLETE").write_text(""), (d / "scenario.resolved.yaml").write_text("name: x\n"), d)[2],
     "unfinished run"),
    (lambda d: ((d / "summary.json").write_text("{not json"), d)[1], "summary.json"),
    (lambda d: ((d / "sweep.json").write_text("{}"), d)[1], "no sweep.csv"),
])
def test_bad_folders_raise_a_clear_error(tmp_path, make, message):
    folder = make(tmp_path)
    with pytest.raises(ReportInputError) as info:
        write_report(folder)
    assert isinstance(info.value, ScenarioError)  # the CLI turns it into exit 2
    assert message in str(info.value) and str(folder.name) in str(info.value)
    assert not (tmp_path / "report.html").exists()


def test_command_line_exit_codes(folders, tmp_path):
    bad = subprocess.run([sys.executable, "-m", "twin.report.html", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "not an output folder" in bad.stderr and "Traceback" not in bad.stderr
    good = subprocess.run([sys.executable, "-m", "twin.report.html", str(folders["below"])], capture_output=True,
                          text=True)
    assert good.returncode == 0 and good.stdout.strip() == str(folders["below"] / "report.html")


def test_stale_plots_are_removed(folders):
    folder = folders["older"]
    (folder / "plots" / "traffic.png").write_bytes(b"old")
    (folder / "plots" / "notes.txt").write_text("mine")
    write_report(folder)
    assert not (folder / "plots" / "traffic.png").exists() and (folder / "plots" / "notes.txt").exists()


def test_wear_histogram_matches_the_writers_rule():
    pulses = Table({"initial_pulses": ["3", "3", "1", "0"], "maintenance_pulses": ["0", "2", "2", "5"]})
    hist = wear_histogram(pulses)
    assert hist.strings("pulses") == ["0", "1", "2", "3", "5"]
    assert hist.strings("initial_devices") == ["1", "1", "0", "2", "0"]
    assert hist.strings("maintenance_devices") == ["1", "0", "2", "0", "1"]


# ---- the verdict on synthetic summaries: every branch -------------------------------------------

def summary(accuracy: list[tuple[float, float | None, float | None]], campaigns: int = 3, misreads: int | None = 40,
            displaced: int = 30, gdc: bool = True, faults: dict | None = None) -> dict:
    rows = []
    for i, (acc, gdc_only, left) in enumerate(accuracy):
        row = {"t_s": 10.0 ** i, "accuracy": acc}
        if gdc_only is not None:
            row |= {"accuracy_gdc_only": gdc_only, "accuracy_left_alone": left}
        rows.append(row)
    out = {"accuracy": rows, "campaigns": campaigns, "misreads": misreads, "displaced_devices": displaced,
           "policy": {"name": "periodic", "gdc": gdc}, "duration_s": 86400.0, "energy_maintenance_j": 2e-6}
    if faults is not None:
        out["faults"] = faults
    return out


def test_verdict_branches():
    assert verdict(summary([])).kind == "no-accuracy"
    v = verdict(summary([(0.95, 0.95, 0.95), (0.90, 0.90, 0.80)], campaigns=0))
    assert v.kind == "no-campaigns" and "No correction campaign ran" in v.sentence
    assert "90.0% for the same" in v.sentence
    v = verdict(summary([(0.95, 0.95, 0.95), (0.90, 0.93, 0.80), (0.50, 0.92, 0.70)]), campaigns_at=[0, 2, 3])
    assert v.kind == "below-baseline"
    assert v.sentence.startswith("Accuracy fell below the GDC-only baseline after 2 campaigns: each campaign rewrote "
                                 "misread devices at the wrong level (40 misreads in all; 30 devices")
    assert "50.0% against 92.0% with GDC only and 70.0% left alone" in v.sentence
    # a dip within noise that recovers is not when it fell: the streak below that lasts to the end is
    v = verdict(summary([(0.90, 0.95, 0.95), (0.95, 0.95, 0.9), (0.80, 0.93, 0.80), (0.50, 0.92, 0.70)]),
                campaigns_at=[0, 1, 4, 6])
    assert "after 4 campaigns" in v.sentence
    v = verdict(summary([(0.95, 0.95, 0.95), (0.50, 0.92, 0.70)]))  # no timeline: the time instead
    assert "baseline by 10 s:" in v.sentence
    v = verdict(summary([(0.80, 0.95, 0.80), (0.60, 0.92, 0.60)], gdc=False), campaigns_at=[0, 1])
    assert "before its first campaign" in v.sentence and "without global drift compensation" in v.sentence
    # with GDC the chip is the GDC-only baseline until its first campaign: a gap then is noise, not the policy
    v = verdict(summary([(0.95, 0.95, 0.95), (0.92, 0.94, 0.90), (0.60, 0.92, 0.70)]), campaigns_at=[0, 0, 1])
    assert "after 1 campaign:" in v.sentence and "before its first campaign" not in v.sentence
    v = verdict(summary([(0.95, 0.95, 0.95), (0.60, 0.92, 0.7)], misreads=0, displaced=0,
                        faults={"lost": {"stuck_weights": 12, "dead_tile_weights": 0}}))
    assert "faults lost weights" in v.sentence and "12 lost" in v.sentence
    v = verdict(summary([(0.95, 0.95, 0.95), (0.60, 0.92, 0.7)], misreads=None, displaced=0))
    assert "no better than global drift compensation" in v.sentence
    v = verdict(summary([(0.95, 0.95, 0.95), (0.94, 0.80, 0.60)]))
    assert v.kind == "above-baseline" and "kept accuracy above doing nothing" in v.sentence
    v = verdict(summary([(0.95, 0.95, 0.95), (0.90, 0.90 + 0.5 * MARGIN, 0.60)]))
    assert v.kind == "matches-baseline"
    assert verdict(summary([(0.95, None, None), (0.5, None, None)])).kind == "no-baselines"


def test_verdict_margin_is_the_boundary():
    just_below = summary([(0.95, 0.95, 0.95), (0.90 - 1.5 * MARGIN, 0.90, 0.6)])
    just_inside = summary([(0.95, 0.95, 0.95), (0.90 - 0.5 * MARGIN, 0.90, 0.6)])
    assert verdict(just_below).kind == "below-baseline" and verdict(just_inside).kind == "matches-baseline"
    assert not math.isnan(MARGIN) and 0 < MARGIN < 0.05
