"""The report of one run folder (``twin run``): the verdict, then accuracy, energy, energy in
context, traffic, campaigns, wear, faults and the scenario as run (docs/reports.md)."""

from __future__ import annotations

import numpy as np

from twin.chip.ledger import maintenance_energy
from twin.device.parameters import ENDURANCE_CYCLES
from twin.report import figures
from twin.report.columns import CAMPAIGN_ENERGY_COMPONENTS
from twin.report.folder import RunFiles, campaign_totals
from twin.report.fmt import MISSING, count, duration_s, pct, si
from twin.report.page import Cell, Plots, esc, paragraph, section, table
from twin.report.verdict import verdict
from twin.units import DAY, SECOND

__all__ = ["run_page", "MAX_TABLE_ROWS"]

MAX_TABLE_ROWS = 40
"""Longer tables (checkpoints, campaigns) show this many rows, spread over the run; the CSV files hold all."""



def _spread(n: int) -> list[int]:
    """Row indices to show: all of them, or MAX_TABLE_ROWS spread evenly with the first and last."""
    if n <= MAX_TABLE_ROWS:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, MAX_TABLE_ROWS).round().astype(int).tolist()))


def _shown(n: int, shown: int, file: str) -> str:
    return paragraph(f"{shown} of {n:,} rows shown, spread over the run; {file} holds all of them.", "note") \
        if shown < n else ""


def _f(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _campaigns_at(run: RunFiles) -> list[int] | None:
    """Campaigns done by each checkpoint (timeline.csv), when it matches the summary's checkpoints."""
    if run.timeline is None or not run.timeline.has("campaigns") or len(run.timeline) != len(run.summary["accuracy"]):
        return None
    return [int(v) for v in run.timeline.floats("campaigns")]


def _header(run: RunFiles) -> str:
    s = run.summary
    policy = s["policy"]
    params = ", ".join(f"{k} {v}" for k, v in sorted(policy.items()) if k != "name" and v is not None)
    chip = s.get("chip") or {}
    facts = (f"Policy {policy.get('name')} ({params}); seed {s['seed']}; {duration_s(s['duration_s'])} of deployment; "
             f"{chip.get('tiles', '?')} tiles of {chip.get('rows', '?')} x {chip.get('cols', '?')} "
             f"({count(chip.get('devices'))} devices, {count(chip.get('weight_devices'))} holding weights); "
             f"scenario {s['scenario']['name']} sha256 {s['scenario']['sha256'][:12]}...")
    sentence = verdict(s, _campaigns_at(run))
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in _SECTIONS)
    return (f"<h1>Run report: {esc(s['scenario']['name'])}</h1>\n"
            f'<p class="verdict" id="verdict" data-kind="{esc(sentence.kind)}">{esc(sentence.sentence)}</p>\n'
            f'<p class="facts">{esc(facts)}</p>\n<nav>{nav}</nav>\n')


_SECTIONS = [("accuracy", "Accuracy"), ("energy", "Energy"), ("energy-context", "Energy in context"),
             ("traffic", "Traffic"), ("campaigns", "Campaigns"), ("wear", "Wear"), ("faults", "Faults"),
             ("scenario", "Scenario")]


def _accuracy(run: RunFiles, plots: Plots, per_campaign: dict) -> str:
    s = run.summary
    rows = s["accuracy"]
    if not rows:
        return paragraph("No checkpoints: accuracy was not evaluated in this run.")
    starts = per_campaign.get("start_s", np.zeros(0))
    body = plots.embed("accuracy", figures.accuracy_figure(s, starts),
                       "Test accuracy against time since deployment (log axis); vertical lines: correction "
                       "campaigns; beside it the same programming never corrected, with GDC only and left alone")
    has_baselines = all(_f(r.get("accuracy_gdc_only")) is not None for r in rows)
    if not has_baselines:
        body += paragraph("The same programming left alone and with GDC only is not recorded in this folder "
                          "(written before the baselines existed): re-run the scenario to see them.", "note")
    done = _campaigns_at(run)
    table_rows = []
    for i in _spread(len(rows)):
        r = rows[i]
        table_rows.append([Cell(duration_s(r["t_s"]), r["t_s"]), Cell(pct(r["accuracy"]), r["accuracy"]),
                           Cell(f"{100 * (r.get('accuracy_std') or 0.0):.2f}", r.get("accuracy_std")),
                           Cell(pct(_f(r.get("accuracy_gdc_only"))), _f(r.get("accuracy_gdc_only"))),
                           Cell(pct(_f(r.get("accuracy_left_alone"))), _f(r.get("accuracy_left_alone"))),
                           Cell(MISSING if done is None else f"{done[i]:,}", None if done is None else done[i])])
    body += table(["time since deployment", "accuracy (%)", "std over samples (points)", "GDC only (%)",
                   "left alone (%)", "campaigns done"], table_rows, "accuracy-table")
    body += _shown(len(rows), len(table_rows), "timeline.csv")
    acc = [r["accuracy"] for r in rows]
    body += table(["figure", "value"], [
        ["digital network (no PCM)", Cell(pct(_f(s.get("digital_accuracy"))), _f(s.get("digital_accuracy")))],
        ["first checkpoint", Cell(pct(acc[0]), acc[0], "accuracy-start")],
        ["lowest", Cell(pct(min(acc)), min(acc), "accuracy-min")],
        ["last checkpoint", Cell(pct(acc[-1]), acc[-1], "accuracy-end")]])
    return body


def _energy(run: RunFiles, plots: Plots, per_campaign: dict) -> str:
    energy = run.summary["energy_j"]
    body = plots.embed("energy", figures.energy_figure(energy, per_campaign),
                       "Left: each operation's energy split by component, with its total; right: each correction "
                       "campaign's maintenance energy by component")
    total = energy.get("total") or 0.0
    rows = []
    for operation, components in figures.OPERATIONS.items():
        for c in components:
            value = energy.get(c)
            share = 100 * value / total if value is not None and total > 0 else None
            rows.append([c, operation, Cell(si(value, "J"), value, f"energy-{c}"),
                         Cell(MISSING if share is None else f"{share:.3g}", share)])
    maintenance = run.summary.get("energy_maintenance_j", maintenance_energy(energy))
    rows.append(["maintenance (sum)", "maintenance", Cell(si(maintenance, "J"), maintenance, "energy-maintenance"),
                 Cell(f"{100 * maintenance / total:.3g}" if total > 0 else MISSING)])
    rows.append(["total", "all", Cell(si(total, "J"), total, "energy-total"), Cell("100" if total > 0 else MISSING)])
    return body + table(["component", "operation", "energy (J)", "share of total (%)"], rows, "energy-table")


def _context(run: RunFiles) -> str:
    s = run.summary
    energy = s["energy_j"]
    maintenance = s.get("energy_maintenance_j", maintenance_energy(energy))
    days = s["duration_s"] / (DAY / SECOND)
    campaigns = s["campaigns"]
    rows = [["maintenance energy", Cell(si(maintenance, "J"), maintenance)],
            ["maintenance per day of deployment", Cell(si(maintenance / days, "J/day"), maintenance / days)],
            ["maintenance per campaign", Cell(si(maintenance / campaigns, "J") if campaigns else MISSING)],
            ["maintenance share of all energy (%)", Cell(f"{100 * maintenance / energy['total']:.3g}" if
                                                         energy.get("total") else MISSING)],
            ["static power's energy (chip on, idle or not)", Cell(si(energy.get("static"), "J"), energy.get("static"))]]
    traffic = s.get("traffic")
    if traffic is None:
        note = paragraph("No inference was served (this run has no traffic: section, docs/traffic.md), so "
                         "maintenance as a share of inference energy and TOPS/W with and without maintenance are "
                         f"{MISSING}. Add a traffic section to set the maintenance against the work it protects.",
                         "note")
        rows += [["maintenance / inference energy", Cell(MISSING, id="maintenance-to-inference")],
                 ["TOPS/W, inference only", Cell(MISSING, id="tops-inference")],
                 ["TOPS/W, with maintenance", Cell(MISSING, id="tops-with-maintenance")]]
        return table(["figure", "value"], rows, "context-table") + note
    ratio = _f(traffic.get("maintenance_to_inference_energy"))
    per = traffic.get("energy_per_inference_j") or {}
    tops = traffic.get("tops_per_w") or {}
    rows += [["maintenance / inference energy", Cell(MISSING if ratio is None else f"{100 * ratio:.3g}%", ratio,
                                                     "maintenance-to-inference")]]
    rows += [[f"energy per inference: {k}", Cell(si(_f(per.get(k)), "J"), _f(per.get(k)))]
             for k in ("inference", "maintenance", "static", "total")]
    for key, label, cell_id in (("inference", "TOPS/W, inference only", "tops-inference"),
                                ("with_maintenance", "TOPS/W, with maintenance", "tops-with-maintenance"),
                                ("with_maintenance_and_static", "TOPS/W, with maintenance and static power",
                                 "tops-with-static")):
        value = _f(tops.get(key))
        rows.append([label, Cell(MISSING if value is None else f"{value:.4g}", value, cell_id)])
    return table(["figure", "value"], rows, "context-table")


def _traffic(run: RunFiles, plots: Plots, per_campaign: dict) -> str:
    s = run.summary
    availability = s.get("availability") or {}
    traffic = s.get("traffic")
    if traffic is None:
        return paragraph(f"No traffic was simulated, so there are no request latencies. By time the chip could "
                         f"serve {pct(_f(availability.get('time')), 6)} of the deployment (longest outage "
                         f"{duration_s(_f(s.get('longest_unavailability_s')))}).")
    body = plots.embed("traffic", figures.traffic_figure(traffic, per_campaign, s["duration_s"]),
                       "Left: request latency percentiles; right: availability over time (the share of each bin "
                       "in which a complete replica could serve)")
    lat = traffic.get("latency_s") or {}
    rows = [[f"latency {k}" + (" (lower bound)" if k == "max" and lat.get("estimated") else ""),
             Cell(si(_f(lat.get(k)), "s"), _f(lat.get(k)), f"latency-{k}")]
            for k in ("mean", "p50", "p95", "p99", "max")]
    req = traffic.get("requests") or {}
    rows += [[f"requests {k}", Cell(count(_f(req.get(k))), _f(req.get(k)))]
             for k in ("arrived", "served", "dropped", "preempted")]
    throughput = _f(traffic.get("throughput_rps"))
    rows += [["throughput (requests/s)", Cell(MISSING if throughput is None else f"{throughput:,.1f}", throughput)],
             ["availability by time", Cell(pct(_f(availability.get("time")), 6), _f(availability.get("time")))],
             ["availability by requests", Cell(pct(_f(availability.get("requests")), 6),
                                               _f(availability.get("requests")))]]
    if lat.get("estimated"):
        body += paragraph("Requests were simulated in windows and weighted to stand for the whole run: counts, "
                          "mean and percentiles are estimates, the max a lower bound (docs/traffic.md).", "note")
    return body + table(["figure", "value"], rows, "traffic-table")


def _campaigns(run: RunFiles, plots: Plots, per_campaign: dict) -> str:
    s = run.summary
    n = per_campaign["campaign"].size
    if run.campaigns is None:
        return paragraph(f"campaigns.csv is {MISSING} in this folder; the summary counts {s['campaigns']:,} campaigns.")
    if n == 0:
        return paragraph("No correction campaign ran: nothing was read back or re-programmed.")
    body = plots.embed("campaigns", figures.campaigns_figure(per_campaign),
                       "Per campaign: weight devices misread by its decode, devices held off their original level "
                       "after it, devices it re-programmed")
    misreads = s.get("misreads")
    body += table(["figure", "value"], [
        ["campaigns", Cell(f"{s['campaigns']:,}", s["campaigns"], "campaigns-total")],
        ["misreads over all campaigns", Cell("no levels (analog weights)" if misreads is None else count(misreads),
                                             misreads, "misreads-total")],
        ["devices held off their original level at the end", Cell(count(s.get("displaced_devices")),
                                                                  s.get("displaced_devices"), "displaced-total")]])
    rows = []
    for i in _spread(n):
        def v(key: str) -> float | None:
            values = per_campaign.get(key)
            return None if values is None or np.isnan(values[i]) else float(values[i])
        pulses = (v("partial_set") or 0) + (v("reset") or 0)
        rows.append([Cell(f"{int(per_campaign['campaign'][i])}", int(per_campaign["campaign"][i])),
                     Cell(duration_s(v("start_s")), v("start_s")), Cell(count(v("tiles")), v("tiles")),
                     Cell(count(v("reads")), v("reads")), Cell(count(pulses), pulses),
                     Cell(count(v("misread")), v("misread")), Cell(count(v("displaced")), v("displaced")),
                     Cell(count(v("devices_corrected")), v("devices_corrected")),
                     Cell(si(v("energy_j"), "J"), v("energy_j")),
                     Cell(si(v("unavailable_s"), "s"), v("unavailable_s"))])
    body += table(["campaign", "start", "tiles", "row reads", "pulses", "misread (devices)", "displaced (devices)",
                   "corrected (devices)", "energy (J)", "unavailable (s)"], rows, "campaigns-table")
    return body + _shown(n, len(rows), "campaigns.csv")


def _wear(run: RunFiles, plots: Plots) -> str:
    s = run.summary
    worst = _f((s.get("pulses") or {}).get("max_per_device")) or 0.0
    years = s["duration_s"] / (365.25 * DAY / SECOND)
    life = years * ENDURANCE_CYCLES / worst if worst > 0 else None
    body = ""
    if run.wear is None:
        body += paragraph(f"Per-device pulse counts are {MISSING} (outputs.per_device_pulses: false, or an older "
                          "folder); the summary's most-worn device is below.", "note")
    else:
        body += plots.embed("wear", figures.wear_figure(run.wear, s["duration_s"]),
                            f"Devices per pulse count (from {run.wear_source}), initial programming and maintenance "
                            f"apart, against the endurance limit of ~{ENDURANCE_CYCLES:.0e} cycles")
    body += table(["figure", "value"], [
        ["endurance limit (cycles; pcm-numbers.md)", Cell(f"{ENDURANCE_CYCLES:.0e}", ENDURANCE_CYCLES)],
        ["most maintenance pulses on one device", Cell(count(worst), worst, "wear-max")],
        ["share of the endurance it used", Cell(f"{100 * worst / ENDURANCE_CYCLES:.3g}%", worst / ENDURANCE_CYCLES)],
        ["endurance reached at this rate after", Cell(MISSING if life is None else f"{life:.3g} y", life)]])
    return body


def _faults(run: RunFiles) -> str:
    faults = run.summary.get("faults")
    if faults is None:
        return paragraph("No faults section: no faults were injected and no tile was given up.")
    rows = []
    for group in ("injected", "detected", "corrected", "lost"):
        for key, value in sorted((faults.get(group) or {}).items()):
            rows.append([group, key.replace("_", " "), Cell(count(_f(value)), _f(value), f"faults-{group}-{key}")])
    body = table(["stage", "fault", "count"], rows, "faults-table")
    dead = faults.get("dead_tiles") or []
    if dead:
        body += table(["tile", "died at", "detected at"], [
            [str(d.get("tile")), Cell(duration_s(_f(d.get("died_s"))), _f(d.get("died_s"))),
             Cell(duration_s(_f(d.get("detected_s"))), _f(d.get("detected_s")))] for d in dead])
    return body


def _scenario(run: RunFiles) -> str:
    s = run.summary
    rows = [["scenario", s["scenario"]["name"]],
            ["sha256 of the resolved scenario", Cell(s["scenario"]["sha256"], id="scenario-sha256", text_align=True)],
            ["seed", Cell(str(s["seed"]), s["seed"])], ["model sha256", str(s.get("model_sha256", MISSING))]]
    rows += [[f"version of {k}", str(v)] for k, v in sorted((s.get("versions") or {}).items())]
    body = table(["item", "value"], rows, "scenario-table")
    body += paragraph(f"Files of this folder: {', '.join(run.files)}.")
    if run.scenario_text is None:
        return body + paragraph(f"scenario.resolved.yaml is {MISSING} in this folder.", "note")
    return body + ("<details open><summary>scenario.resolved.yaml: the scenario as run (every default filled in; "
                   f'twin run --resume rebuilds the run from it)</summary>\n<pre id="scenario-yaml">'
                   f"{esc(run.scenario_text)}</pre></details>\n")


def run_page(run: RunFiles, plots: Plots) -> tuple[str, str]:
    """(title, body) of the report of ``run``; its figures go to ``plots``."""
    per_campaign = campaign_totals(run.campaigns, CAMPAIGN_ENERGY_COMPONENTS) if run.campaigns is not None \
        else {"campaign": np.zeros(0)}
    parts = {"accuracy": _accuracy(run, plots, per_campaign), "energy": _energy(run, plots, per_campaign),
             "energy-context": _context(run), "traffic": _traffic(run, plots, per_campaign),
             "campaigns": _campaigns(run, plots, per_campaign), "wear": _wear(run, plots), "faults": _faults(run),
             "scenario": _scenario(run)}
    body = _header(run) + "".join(section(anchor, title, parts[anchor]) for anchor, title in _SECTIONS)
    return f"Run report: {run.summary['scenario']['name']}", body
