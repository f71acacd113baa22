"""Figure 5 (and figure 2's chip64 part): scenarios/chip64.yaml, 64 full tiles of 256 x 256.

- **wall, peak memory, floor ratio** (one child process, bench/child.py, no warm-up: a cold run as
  a user would start it, without output files): the scenario over ``days`` simulated days
  (``--set duration=N d``; the 40 log-spaced checkpoints then all fall within those days), recorded
  by bench/workload.py; wall time from spawn to the end of the run, peak RSS from ``wait4``, then
  the floor of the recorded sequence in the same process (best of 3; --quick: 1).
  A year is **extrapolated linearly** from the shortened run: what does not grow with the duration
  (start-up and imports, build, the initial programming up to the first probe, the checkpoints'
  accuracy evaluations, a fixed count) once, the rest (campaigns) times 365.25 / days. ``full``
  runs the whole year instead (no extrapolation).
- **SimPy's own share**: cProfile of ``simulate`` over ``profile_days`` (a year is far too long to
  profile), in its own child process.

Skipped, with the reason printed, when scenarios/chip64.yaml does not exist.
"""

from __future__ import annotations

from bench.common import ROOT, Skip, run_child

__all__ = ["SCENARIO", "chip64_figures", "chip64_profile"]

SCENARIO = "scenarios/chip64.yaml"
YEAR_DAYS = 365.25


def _campaigns_in_scenario() -> int:
    """Campaigns of the whole scenario (a periodic policy: one per interval, none at t = 0 or at the end)."""
    import math

    from twin.scenario.schema import load_scenario
    scenario = load_scenario(ROOT / SCENARIO)
    return math.ceil(scenario.duration / scenario.policy.interval) - 1


def _check() -> None:
    if not (ROOT / SCENARIO).exists():
        raise Skip(f"{SCENARIO} does not exist (yet)")


def chip64_figures(days: float | None = 7, timeout_s: float = 3600, torch_threads: int | None = None,
                   floor_repeats: int = 3) -> dict:
    """``days`` None: the scenario's own duration (a year), nothing extrapolated."""
    _check()
    overrides = [] if days is None else [f"duration={days:g} d"]
    report, proc = run_child({"mode": "scenario", "scenario": SCENARIO, "overrides": overrides, "warmup": False,
                              "record_in": "timed", "timing": True, "profile": False,
                              "floor_repeats": floor_repeats},
                             timeout_s, torch_threads)
    if "timed" not in report:
        raise RuntimeError(f"chip64 did not finish within {timeout_s:.0f} s" if report.get("timed_out")
                           else "chip64: no result")
    timed = report["timed"]
    wall = timed["run_end_monotonic"] - proc.spawned_monotonic
    out = {"scenario": SCENARIO, "overrides": overrides, "simulated_days": days if days is not None else YEAR_DAYS,
           "wall_s": wall, "compute_s": timed["compute_s"], "build_s": timed["build_s"], "run_s": timed["run_s"],
           "deploy_s": timed.get("deploy_s"), "checkpoint_s": timed.get("checkpoint_s"),
           "peak_rss_mb": proc.peak_rss_mb, "summary": timed["summary"], "work": report.get("work"),
           "floor": report.get("floor"), "floor_s": (report.get("floor") or {}).get("floor_s"),
           "extrapolated": days is not None, "timed_out_in_floor": bool(report.get("timed_out"))}
    out["compute_over_floor"] = out["compute_s"] / out["floor_s"] if out["floor_s"] else None
    if days is not None:
        campaigns = out["summary"]["campaigns"] or 0
        year_campaigns = _campaigns_in_scenario()
        fixed_run = (out["deploy_s"] or 0.0) + (out["checkpoint_s"] or 0.0)
        startup = wall - out["run_s"]  # spawn, imports, scenario, build
        if campaigns:
            per_campaign = max(out["run_s"] - fixed_run, 0.0) / campaigns
            out["per_campaign_s"] = per_campaign
            out["year_campaigns"] = year_campaigns
            out["year_wall_s_extrapolated"] = startup + fixed_run + per_campaign * year_campaigns
            out["year_compute_s_extrapolated"] = out["build_s"] + fixed_run + per_campaign * year_campaigns
        out["note"] = (f"{days:g} simulated days measured ({campaigns} campaigns); a year extrapolated linearly: "
                       f"start-up, build, initial programming and the 40 checkpoints once, campaigns x "
                       f"{year_campaigns}/{campaigns}" if campaigns else
                       f"{days:g} simulated days hold no campaign: nothing to extrapolate (use --chip64-days >= 2)")
    return out


def chip64_profile(days: float = 2, timeout_s: float = 3600, torch_threads: int | None = None) -> dict:
    _check()
    overrides = [f"duration={days:g} d"]
    report, _ = run_child({"mode": "scenario", "scenario": SCENARIO, "overrides": overrides, "warmup": False,
                           "timed": False, "profile": True, "floor_repeats": 0}, timeout_s, torch_threads)
    if "profile" not in report:
        raise RuntimeError(f"chip64 profile did not finish within {timeout_s:.0f} s")
    return {"scenario": SCENARIO, "overrides": overrides,
            "note": f"profiled over {days:g} simulated days (a year is far too long to profile)",
            **report["profile"]}
