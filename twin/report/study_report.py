"""The reports of a ``twin compare`` folder (compare.json) and a ``twin sweep`` folder (sweep.csv,
sweep.json): the side-by-side table, the Pareto plot, accuracy curves, per-factor effect plots."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from urllib.parse import quote

import numpy as np

from twin.report import study_figures
from twin.report.folder import ReportInputError, read_json
from twin.report.fmt import MISSING, duration_s, si
from twin.report.page import Cell, Plots, esc, paragraph, section, table, wide
from twin.report.report_files import REPORT_FILE
from twin.report.study_figures import Point

__all__ = ["FIGURES", "compare_page", "sweep_page", "mean_and_se"]

FIGURES: list[tuple[str, str, str]] = [
    ("accuracy_start", "accuracy at the first checkpoint (%)", "pct"),
    ("accuracy_final", "accuracy at the end (%)", "pct"),
    ("accuracy_min", "lowest accuracy (%)", "pct"),
    ("accuracy_time_weighted", "time-weighted accuracy (%)", "pct"),
    ("energy_maintenance_j", "maintenance energy (J)", "J"),
    ("energy_maintenance_per_day_j", "maintenance energy per day (J/day)", "J/day"),
    ("campaigns", "campaigns (count)", "count"),
    ("pulses", "pulses (count)", "count"),
    ("misreads", "misreads (devices)", "count"),
    ("misread_rate_per_campaign", "misread per campaign (% of weight devices)", "pct"),
    ("displaced_devices", "displaced at the end (devices)", "count"),
    ("availability_time", "availability by time (%)", "pct6"),
    ("latency_p99_s", "latency p99 (s)", "s"),
    ("tops_per_w", "TOPS/W with maintenance and static", "plain"),
]
"""The figures the tables show (compare.json / sweep.csv names; docs/sweeps.md), header with unit, format."""


def _cell(kind: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    if kind == "pct":
        return f"{100 * value:.1f}"
    if kind == "pct6":
        return f"{100 * value:.6f}"
    if kind in ("J", "J/day", "s"):
        return si(value, kind)
    if kind == "count":
        return f"{value:,.1f}" if value != round(value) else f"{round(value):,}"
    return f"{value:.4g}"


def mean_and_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for one value)."""
    arr = np.array(values, dtype=float)
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else 0.0
    return float(arr.mean()), se


def _present(rows: list[dict], key: str) -> bool:
    return any(row.get(key) is not None for row in rows)


# ---- compare ------------------------------------------------------------------------------------

def _stat(entry: dict, key: str, stat: str = "mean") -> float | None:
    value = (entry.get(key) or {}).get(stat) if isinstance(entry.get(key), dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def compare_page(folder: Path, plots: Plots) -> tuple[str, str]:
    data = read_json(Path(folder) / "compare.json")
    if not isinstance(data.get("policies"), dict) or not data["policies"]:
        raise ReportInputError(Path(folder) / "compare.json", "holds no policies: not a file twin compare wrote")
    order = [label for label in data.get("order", list(data["policies"])) if label in data["policies"]]
    name = (data.get("scenario") or {}).get("name", "?")
    seeds = data.get("seeds", "?")
    entries = {label: data["policies"][label] for label in order}
    done = {label: e for label, e in entries.items() if "accuracy_min" in e}
    points = [Point(label, _stat(e, "energy_maintenance_per_day_j") or 0.0, _stat(e, "accuracy_min") or 0.0,
                    (_stat(e, "accuracy_min", "std") or 0.0) / math.sqrt(max(len(e.get("seeds", [])), 1)))
              for label, e in done.items()]
    body = f"<h1>Compare report: {esc(name)}</h1>\n"
    body += f'<p class="verdict" id="verdict">{esc(_compare_sentence(points, seeds))}</p>\n'
    body += paragraph(f"{len(order)} policies, {seeds} seeds each (seeds {data.get('first_seed', '?')} onwards: "
                      "the same seed programs the same chip under every policy), "
                      f"{duration_s(data.get('duration_s'))} of deployment; scenario sha256 "
                      f"{(data.get('scenario') or {}).get('sha256', MISSING)}.", "facts")
    keys = [(k, h, kind) for k, h, kind in FIGURES if any(isinstance(e.get(k), dict) for e in done.values())]
    rows = []
    for label, e in entries.items():
        n = len(e.get("seeds", []))
        row: list[Cell | str] = [label, Cell(f"{n}", n), Cell(f"{len(e.get('errors', []))}", len(e.get("errors", [])))]
        for key, _h, kind in keys:
            mean, std = _stat(e, key), _stat(e, key, "std")
            text = _cell(kind, mean) + (f" ± {100 * std:.1f}" if kind == "pct" and std and key.startswith("acc")
                                        else "")
            row.append(Cell(text, mean, f"cmp-{label}-{key}"))
        rows.append(row)
    table_html = table(["policy", "seeds finished", "failed runs"] + [h for _k, h, _kind in keys], rows,
                       "compare-table")
    table_html += paragraph("Means over the seeds; accuracies also ± their standard deviation (points). "
                            "compare.csv and compare.json hold every figure.", "note")
    body += section("table", "Side by side", table_html)
    pareto = plots.embed("pareto", study_figures.pareto_figure(
        points, f"{name}: maintenance energy against worst-case accuracy", "lowest accuracy",
        f"mean ± standard error over {seeds} seeds"), "Pareto plot: maintenance energy per day against the lowest "
        "accuracy of the run (mean ± standard error over seeds); the dashed line joins the policies no other beats "
        "on both") if points else paragraph("No policy finished a run: nothing to plot.")
    body += section("pareto", "Pareto plot", pareto)
    curves = {label: e.get("accuracy_curves") or [] for label, e in done.items()}
    if data.get("checkpoints_s") and any(curves.values()):
        body += section("curves", "Accuracy against time", plots.embed("curves", study_figures.curves_figure(
            data["checkpoints_s"], curves, data.get("duration_s") or 1.0, f"{name}: accuracy against time"),
            "Test accuracy against time since deployment, mean over the seeds, one line per policy"))
    if done:
        body += section("effects", "Effect of the policy", _compare_effects(done, plots))
    errors = [(label, err) for label, e in entries.items() for err in e.get("errors", [])]
    if errors:
        body += section("errors", "Failed runs", table(["policy", "seed", "error"], [
            [label, Cell(str(err.get("seed")), err.get("seed")), str(err.get("error"))] for label, err in errors]))
    return f"Compare report: {name}", body


def _compare_sentence(points: list[Point], seeds: object) -> str:
    if not points:
        return "No policy finished a run, so there is nothing to compare."
    best = max(points, key=lambda p: (p.accuracy, -p.energy_per_day_j))
    near = [p for p in points if p.accuracy >= best.accuracy - 0.01]
    cheapest = min(near, key=lambda p: (p.energy_per_day_j, -p.accuracy))
    text = f"Over {seeds} seeds, {best.label} kept the highest lowest accuracy ({100 * best.accuracy:.1f}%)"
    if cheapest.label != best.label:
        text += (f"; {cheapest.label} came within a point of it ({100 * cheapest.accuracy:.1f}%) for "
                 f"{si(cheapest.energy_per_day_j, 'J/day')} of maintenance")
    else:
        text += f" for {si(best.energy_per_day_j, 'J/day')} of maintenance"
    worst = min(points, key=lambda p: p.accuracy)
    if worst.label != best.label:
        text += f"; {worst.label} fell lowest ({100 * worst.accuracy:.1f}%)"
    return text + "."


def _compare_effects(done: dict[str, dict], plots: Plots) -> str:
    levels = list(done)
    panels = []
    for key, label, scale, log in (("accuracy_final", "accuracy at the end (%)", 100, False),
                                   ("accuracy_min", "lowest accuracy (%)", 100, False),
                                   ("energy_maintenance_j", "maintenance energy (J)", 1, True)):
        n = [max(len(e.get("seeds", [])), 1) for e in done.values()]
        means = [scale * (_stat(e, key) or 0.0) for e in done.values()]
        errors = [scale * (_stat(e, key, "std") or 0.0) / math.sqrt(k) for e, k in zip(done.values(), n)]
        panels.append((label, means, errors, log))
    return plots.embed("effect_policy", study_figures.effect_figure("policy", levels, panels),
                       "Per policy: accuracy at the end, lowest accuracy and maintenance energy, mean ± standard "
                       "error over the seeds")


# ---- sweep --------------------------------------------------------------------------------------

MAX_RUN_ROWS = 1000
"""The run table shows at most this many runs (sweep.csv holds all)."""


def _read_sweep_csv(path: Path) -> tuple[list[str], list[dict]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReportInputError(path, f"cannot read it: {exc}") from None
    missing = [c for c in ("run", "seed", "status") if c not in header]
    if missing:
        raise ReportInputError(path, f"lacks the columns {', '.join(missing)}: not a file twin sweep wrote")
    return header, rows


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _level(value: str) -> str:
    return value if value != "" else "(base)"


def sweep_page(folder: Path, plots: Plots) -> tuple[str, str]:
    folder = Path(folder)
    header, rows = _read_sweep_csv(folder / "sweep.csv")
    factors = header[header.index("seed") + 1:header.index("status")]  # the override columns (docs/sweeps.md)
    spec = read_json(folder / "sweep.json") if (folder / "sweep.json").is_file() else {}
    base = spec.get("base") or {}
    ok = [r for r in rows if r["status"] == "ok"]
    status = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "pending")}
    configs: dict[tuple[str, ...], list[dict]] = {}
    for r in ok:
        configs.setdefault(tuple(r[f] for f in factors), []).append(r)

    tags = {config: f"C{i + 1}" for i, config in enumerate(configs)}

    def label(config: tuple[str, ...]) -> str:  # the keys a configuration sets (empty: the base's value)
        return ", ".join(f"{f}={v}" for f, v in zip(factors, config) if v != "") or "base"

    points = []
    for config, runs in configs.items():
        accuracy = [v for v in (_number(r.get("accuracy_min")) for r in runs) if v is not None]
        energy = [v for v in (_number(r.get("energy_maintenance_per_day_j")) for r in runs) if v is not None]
        if accuracy and energy:
            points.append(Point(label(config), mean_and_se(energy)[0], *mean_and_se(accuracy), tag=tags[config]))
    name = base.get("name", "?")
    body = f"<h1>Sweep report: {esc(name)}</h1>\n"
    sentence = (f"{len(rows):,} runs: {status['ok']:,} finished, {status['failed']:,} failed, {status['pending']:,} "
                f"pending; {len(configs):,} configurations of {len(factors)} varied keys.")
    if points:
        best = max(points, key=lambda p: (p.accuracy, -p.energy_per_day_j))
        sentence += (f" Highest lowest accuracy: {best.tag} {best.label} ({100 * best.accuracy:.1f}%, "
                     f"{si(best.energy_per_day_j, 'J/day')} of maintenance).")
    body += f'<p class="verdict" id="verdict">{esc(sentence)}</p>\n'
    body += paragraph(f"Base scenario {name}, sha256 {base.get('sha256', MISSING)}; varied: "
                      f"{', '.join(factors) or 'nothing (seeds only)'}.", "facts")
    body += section("configurations", "Side by side", _config_table(configs, factors, tags))
    body += section("runs", "Every run", _run_table(folder, rows, factors))
    body += section("pareto", "Pareto plot", plots.embed("pareto", study_figures.pareto_figure(
        points, f"{name}: maintenance energy against worst-case accuracy", "lowest accuracy",
        "mean ± standard error over seeds"), "Pareto plot: each configuration's maintenance energy per day against "
        "its lowest accuracy (mean ± standard error over its seeds); the dashed line joins the configurations no "
        "other beats on both") if points else paragraph("No run finished: nothing to plot."))
    body += section("effects", "Effect of each varied key", _sweep_effects(factors, ok, plots))
    return f"Sweep report: {name}", body


def _config_table(configs: dict[tuple[str, ...], list[dict]], factors: list[str], tags: dict) -> str:
    if not configs:
        return paragraph("No run finished yet.")
    keys = [(k, h, kind) for k, h, kind in FIGURES if any(_number(r.get(k)) is not None
                                                         for runs in configs.values() for r in runs)]
    rows = []
    for config, runs in configs.items():
        row: list[Cell | str] = [tags[config]] + [_level(v) for v in config] + [Cell(f"{len(runs)}", len(runs))]
        for key, _h, kind in keys:
            values = [v for v in (_number(r.get(key)) for r in runs) if v is not None]
            if not values:
                row.append(Cell(MISSING))
                continue
            mean, se = mean_and_se(values)
            extra = f" ± {100 * se:.1f}" if kind == "pct" and key.startswith("accuracy") and se else ""
            row.append(Cell(_cell(kind, mean) + extra, mean, f"cfg-{tags[config]}-{key}"))
        rows.append(row)
    return (table(["configuration"] + factors + ["seeds finished"] + [h for _k, h, _kind in keys], rows,
                  "config-table")
            + paragraph("Means over each configuration's seeds; accuracies also ± their standard error (points).",
                        "note"))


def _run_table(folder: Path, rows: list[dict], factors: list[str]) -> str:
    shown = rows[:MAX_RUN_ROWS]
    out = []
    for r in shown:
        run = r["run"]
        has_report = (folder / run / REPORT_FILE).is_file()
        link = f'<a href="{esc(quote(run))}/report.html">{esc(run)}</a>' if has_report else esc(run)
        out.append(f'<tr><td class="text">{link}</td><td>{esc(r["seed"])}</td>'
                   + "".join(f'<td class="text">{esc(_level(r[f]))}</td>' for f in factors)
                   + f'<td class="text">{esc(r["status"])}</td>'
                   + "".join(Cell(_cell(kind, _number(r.get(k))), _number(r.get(k))).render()
                             for k, _h, kind in FIGURES[:6])
                   + f'<td class="text">{esc(r.get("error") or "")}</td></tr>\n')
    head = '<th class="text">run</th>' + "".join(f"<th>{esc(h)}</th>" for h in ["seed"] + factors + ["status"]
                                                 + [h for _k, h, _kind in FIGURES[:6]] + ["error"])
    note = paragraph(f"{len(shown):,} of {len(rows):,} runs shown; sweep.csv holds all.", "note") \
        if len(shown) < len(rows) else ""
    body = "".join(out)
    return wide(f'<table id="runs-table">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>') + note


def _sweep_effects(factors: list[str], ok: list[dict], plots: Plots) -> str:
    if not factors:
        return paragraph("Nothing varied but the seed: no effect to show.")
    out, used = "", set()
    for factor in factors:
        levels = list(dict.fromkeys(r[factor] for r in ok))
        if len(levels) < 2:
            out += paragraph(f"{factor}: one level among the finished runs, no effect to show.", "note")
            continue
        panels = []
        for key, axis, scale, log in (("accuracy_final", "accuracy at the end (%)", 100, False),
                                      ("accuracy_min", "lowest accuracy (%)", 100, False),
                                      ("energy_maintenance_j", "maintenance energy (J)", 1, True)):
            stats = [mean_and_se([v for v in (_number(r.get(key)) for r in ok if r[factor] == level)
                                  if v is not None] or [math.nan]) for level in levels]
            panels.append((axis, [scale * m for m, _ in stats], [scale * e for _, e in stats], log))
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", factor)
        name = f"effect_{slug}" if f"effect_{slug}" not in used else f"effect_{slug}_{len(used)}"
        used.add(name)
        out += plots.embed(name, study_figures.effect_figure(factor, [_level(v) for v in levels], panels),
                           f"Effect of {factor}: at each level, the mean ± standard error over every finished run "
                           "with that level (all seeds and all levels of the other keys)")
    return out
