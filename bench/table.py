"""The bench's table (rich): one row per figure, its target, what was measured, and the detail."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

__all__ = ["rows", "print_table"]


def _s(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f} s"


def _load(values) -> str:
    return "-" if not values else "/".join(f"{v:.1f}" for v in values)


def _mark(ok: bool | None) -> str:
    return "" if ok is None else ("[green]ok[/green]" if ok else "[red]missed[/red]")


def _problem(d: dict) -> str | None:
    if not isinstance(d, dict):
        return "no result"
    if "skipped" in d:
        return f"skipped: {d['skipped']}"
    if "error" in d:
        return f"[red]error[/red]: {d['error'][:160]}"
    return None


def rows(report: dict) -> list[tuple[str, str, str, str, str]]:
    """(figure, target, measured, status, detail) per figure, for the sections present."""
    out: list[tuple[str, str, str, str, str]] = []
    sec = report.get("sections", {})

    def add(figure, target, measured, ok=None, detail=""):
        out.append((figure, target, measured, _mark(ok), detail))

    def problem_row(figure, d) -> bool:
        p = _problem(d)
        if p:
            add(figure, "", "-", None, p)
        return bool(p)

    if "micro" in sec and not problem_row("machine baseline / SA / traffic", sec["micro"]):
        m = sec["micro"]
        add("machine baseline (fixed numpy workload)", "", _s(m["baseline_s"], 3), None, "best of 5")
        a, t = m["anneal"], m["traffic"]
        add("SA quantizer, 3,000 weights (CPU s)", "<= 2 s", _s(a["cpu_s"], 2), a["cpu_s"] <= 2,
            f"wall {a['wall_s']:.2f} s, error ratio {a['error_ratio']:.3f}")
        add("traffic engine vs bare SimPy loop", "", f"{t['ratio']:.2f}", None,
            f"{t['twin_requests_per_s'] / 1e3:.0f} k req/s vs {t['bare_simpy_requests_per_s'] / 1e3:.0f} k req/s")
    if "default" in sec and not problem_row("default scenario", sec["default"]):
        d = sec["default"]
        label = "default" + (f" ({', '.join(d['overrides'])})" if d["overrides"] else "")
        add(f"{label}: wall from process start", "", _s(d["wall_s"]), None, f"`{d['cli']['command']}`")
        if d.get("report_wall_s") is not None:
            add(f"{label}: report (twin report, apart)", "", _s(d["report_wall_s"]), None,
                "report.html and its plots from the run folder, a process of its own")
        add(f"{label}: compute (simulate after warm-up)", "<= 5 s", _s(d["compute_s"]), d["compute_s"] <= 5,
            f"warm-up build {d['warmup_build_s']:.1f} s + run {d['warmup_run_s']:.1f} s")
        f = d.get("floor") or {}
        if d.get("compute_over_floor") is not None:
            add(f"{label}: compute / floor", "<= 4x", f"{d['compute_over_floor']:.1f}x", d["compute_over_floor"] <= 4,
                f"floor {f['floor_s']:.2f} s: P&V {f['pv_rounds_s']:.2f} s, probes {f['probes_s']:.2f} s, "
                f"forward {f['accuracy_samples_s']:.2f} s; ops {f['ops']}")
        add(f"{label}: peak memory (twin run RSS)", "<= 1 GB", f"{d['peak_rss_mb']:.0f} MB",
            d["peak_rss_mb"] <= 1024)
        if d.get("simpy_share") is not None:
            add(f"{label}: SimPy's own share (cProfile)", "<= 25%", f"{100 * d['simpy_share']:.1f}%",
                d["simpy_share"] <= 0.25, f"of {d['profile']['profiled_total_s']:.1f} s profiled")
    if "reads" in sec and not problem_row("device reads", sec["reads"]):
        r = sec["reads"]
        add(f"device reads, correlated 1/f, {r['devices']:,} float32", ">= 0.5", f"{r['ratio']:.2f}", r["ratio"] >= 0.5,
            f"twin {r['twin_devices_per_s'] / 1e6:.1f} M/s, numpy (same math) {r['numpy_devices_per_s'] / 1e6:.1f} M/s")
    if "accuracy" in sec and not problem_row("accuracy evaluation", sec["accuracy"]):
        a = sec["accuracy"]
        ta, aa = a["twin_accuracy"], a["aihwkit_accuracy"]
        add("accuracy evaluation: aihwkit / twin time", ">= 10x", f"{a['speedup']:.2f}x", a["speedup"] >= 10,
            f"per sample: twin {1e3 * a['twin_s_per_sample']:.1f} ms, aihwkit {1e3 * a['aihwkit_s_per_sample']:.1f} ms"
            f" ({a['images']} images, {a['checkpoint']}, GDC {'on' if a['gdc'] else 'off'})")
        add("accuracy evaluation: statistics agree", "|z| <= 2", f"z = {a['z']:.2f}", a.get("agree"),
            f"twin {100 * ta['mean']:.1f} ± {100 * ta['se']:.1f}%, aihwkit {100 * aa['mean']:.1f} ± "
            f"{100 * aa['se']:.1f}% (mean ± se, {a['programmings']} programmings each)")
    if "chip64" in sec and not problem_row("chip64", sec["chip64"]):
        c = sec["chip64"]
        run, prof = c.get("run", {}), c.get("profile", {})
        if not problem_row("chip64 run", run):
            days = run["simulated_days"]
            if run["extrapolated"]:
                add("chip64: wall for a year (extrapolated)", "", _s(run.get("year_wall_s_extrapolated"), 0), None,
                    f"from {days:g} simulated days: wall {run['wall_s']:.0f} s (build {run['build_s']:.0f} s, "
                    f"deployment {run['deploy_s'] or 0:.0f} s, checkpoints {run['checkpoint_s'] or 0:.0f} s, "
                    + (f"{run['per_campaign_s']:.1f} s per campaign x {run['year_campaigns']})"
                       if "per_campaign_s" in run else "no campaign)"))
            else:
                add("chip64: wall for a year", "", _s(run["wall_s"], 0), None, "measured, whole year")
            add(f"chip64: peak memory ({days:g} d)", "", f"{run['peak_rss_mb']:.0f} MB", None,
                f"{run['summary']['devices']:,} devices")
            if run.get("compute_over_floor") is not None:
                f = run["floor"]
                add(f"chip64: compute / floor ({days:g} d)", "<= 4x", f"{run['compute_over_floor']:.1f}x",
                    run["compute_over_floor"] <= 4,
                    f"compute {run['compute_s']:.0f} s, floor {f['floor_s']:.1f} s (P&V {f['pv_rounds_s']:.1f}, "
                    f"probes {f['probes_s']:.1f}, forward {f['accuracy_samples_s']:.1f})")
        if not problem_row("chip64 SimPy share", prof):
            add("chip64: SimPy's own share (cProfile)", "<= 25%", f"{100 * prof['simpy_share']:.1f}%",
                prof["simpy_share"] <= 0.25, prof["note"])
    if "sweep" in sec and not problem_row("sweep", sec["sweep"]):
        sw, ex = sec["sweep"].get("sweep", {}), sec["sweep"].get("experiments", {})
        if not problem_row("sweep throughput", sw):
            add(f"sweep: runs/min ({sw['runs']} runs, {sw['workers']} workers)", "", f"{sw['runs_per_min']:.1f}", None,
                f"ideal {sw['ideal_runs_per_min']:.1f} (single run {sw['single_run_s']:.1f} s), engine overhead "
                f"{100 * sw['engine_overhead']:.0f}%; sweep {sw['sweep_wall_s']:.0f} s, a run on its worker "
                + ("-" if sw.get("worker_run_wall_s_mean") is None else f"{sw['worker_run_wall_s_mean']:.1f} s")
                + " (mean)")
        if not problem_row("make experiments", ex):
            add("make experiments (3 comparisons + report)", "<= 8 min", _s(ex["total_s"], 0), ex["total_s"] <= 480)
    if "scaling" in sec and not problem_row("scaling", sec["scaling"]):
        s = sec["scaling"]
        for axis in ("devices", "campaigns"):
            a = s[axis]
            pts = a["points"]
            k = a.get("exponent")
            span = f"{pts[0][axis]:,} .. {pts[-1][axis]:,}" if pts else "no points"
            miss = f"; missing: {', '.join(a['missing'])}" if a.get("missing") else ""
            kr = a.get("exponent_run_only")
            add(f"scaling: time ~ {axis}^k", "", "-" if k is None else f"k = {k:.2f}", None,
                f"{span}: " + ", ".join(f"{p['compute_s']:.1f}" for p in pts) + " s"
                + ("" if kr is None else f" (run alone: k = {kr:.2f})") + miss)
    return out


def print_table(report: dict) -> None:
    table = Table(title="pcm-twin bench (ratios against baselines measured in the same run)", show_lines=False)
    for column, style in (("figure", "bold"), ("target", ""), ("measured", "cyan"), ("", ""), ("detail", "dim")):
        table.add_column(column, style=style or None, overflow="fold")
    for row in rows(report):
        table.add_row(*row)
    console = Console(width=max(Console().width, 160))
    console.print(table)
    m = report.get("machine", {})
    console.print(f"machine: {m.get('cpus')} cpus, python {m.get('python')}, torch {m.get('torch')} "
                  f"({m.get('torch_threads')} threads), load average {_load(m.get('loadavg_start'))} -> "
                  f"{_load(m.get('loadavg_end'))}, "
                  f"commit {m.get('git_commit', '')[:10]}{' (dirty)' if m.get('git_dirty') else ''}"
                  + (f" -> {m['git_commit_end'][:10]} (the tree changed during the run)"
                     if m.get("git_commit_end") and m.get("git_commit_end") != m.get("git_commit") else "")
                  + "; "
                  f"total {report.get('total_wall_s', 0):.0f} s")
